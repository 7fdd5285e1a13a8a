"""Scoring result sets: pairing, input checks, network planning, metric loops, summaries.

:func:`evaluate` is what ``brushwork evaluate`` runs. It takes an
:class:`EvaluationSettings` and returns an :class:`EvaluationResult` (per-item rows
and a summary, or a paired comparison of two result sets). Before any network loads
it checks, in this order: the metric names, the output file's folder (probe-written),
every input (paired by name, each opened as an image, aspect ratios compared), the
image counts FID needs, and then every pretrained network the chosen metrics need
(:func:`missing_networks`): all the missing ones are reported in one error line, with
a ``--metrics`` list of the chosen metrics that can run without them.

Example::

    settings = EvaluationSettings(mode="style", results=("out/",), content="content/",
                                  style="style/", metrics=("ssim", "histogram"))
    result = evaluate(settings)
    print(result.summary["ssim"]["mean"])
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError, ImageError, OutputPathError, WeightsError

__all__ = [
    "ASPECT_TOLERANCE",
    "EDIT_METRICS",
    "HIGHER_IS_BETTER",
    "MODES",
    "OPT_IN_METRICS",
    "SET_METRICS",
    "STYLE_METRICS",
    "VIDEO_METRICS",
    "EvaluationResult",
    "EvaluationSettings",
    "Item",
    "MetricNetworks",
    "Network",
    "NetworkSettings",
    "check_networks",
    "check_output",
    "choose_metrics",
    "evaluate",
    "missing_networks",
    "networks_needed",
    "score_style_items",
    "score_triples",
    "write_scores",
]

STYLE_METRICS = (
    "ssim",
    "lpips",
    "content_loss",
    "gram_loss",
    "clip_style",
    "leakage",
    "histogram",
    "fid",
    "artfid",
    "csd",
    "cfsd",
    "lpips_gray",
    "histogan",
    "fid_inf",
    "artfid_inf",
)
EDIT_METRICS = ("clip_text", "clip_direction", "clip_accuracy", "structure", "lpips")
VIDEO_METRICS = ("warping_error",)
MODES = {"style": STYLE_METRICS, "edit": EDIT_METRICS, "video": VIDEO_METRICS}
#: Metrics over whole sets (no per-item value).
SET_METRICS = ("fid", "artfid", "fid_inf", "artfid_inf")
#: Computed only when asked for by name (a large download, or a protocol's extra).
OPT_IN_METRICS = ("csd", "cfsd", "lpips_gray", "histogan", "fid_inf", "artfid_inf")
#: Set metric -> the Inception variant it uses.
INCEPTION_OF = {"fid": "fid", "fid_inf": "fid", "artfid": "art", "artfid_inf": "art"}
#: Metrics whose summary needs every item's LPIPS.
NEEDS_LPIPS = ("lpips", "lpips_gray", "artfid", "artfid_inf")
#: Direction of improvement, shown in the summary.
HIGHER_IS_BETTER = {"ssim", "csd", "clip_style", "clip_text", "clip_direction", "clip_accuracy"}
#: Relative difference of aspect ratios up to which an input is resized to its result.
ASPECT_TOLERANCE = 0.02
OUTPUT_SUFFIXES = (".csv", ".json")


@dataclass(frozen=True)
class NetworkSettings:
    """Where each pretrained network comes from (``None``: the registry / Hub default)."""

    lpips_net: str = "alex"
    lpips_weights: str | None = None
    lpips_trunk_weights: str | None = None
    vgg_weights: str | None = None
    inception_weights: str | None = None
    art_inception_weights: str | None = None
    #: FID Inception input size (299: comparable FID; smaller only for quick checks).
    inception_size: int = 299
    clip_model: str | None = None
    dino_model: str | None = None
    csd_weights: str | None = None


@dataclass(frozen=True)
class EvaluationSettings:
    """What to score and how.

    Attributes:
        mode: ``"style"``, ``"edit"`` or ``"video"``.
        results: one result folder/file, or two for a paired comparison.
        metrics: the requested metrics (``None``: every metric of the mode that applies).
        output: per-item scores file (``.csv`` or ``.json``), written atomically.
    """

    mode: str
    results: tuple[str, ...]
    content: str | None = None
    style: str | None = None
    input: str | None = None
    target: str | None = None
    source: str | None = None
    video: str | None = None
    metrics: tuple[str, ...] | None = None
    networks: NetworkSettings = field(default_factory=NetworkSettings)
    flow: str = "dis"
    device: str = "auto"
    batch_size: int = 8
    output: str | None = None


@dataclass
class Item:
    """One scored item: names of its files and its per-item scores."""

    name: str
    files: dict[str, Path]
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    """A pretrained network some chosen metrics need.

    Attributes:
        name: registry name (``"alexnet"``, ``"clip-vit-large"``) or the Hub id given.
        kind: ``"file"`` (torch weight file) or ``"hub"`` (Hugging Face model).
        source: the path or Hub id that will be loaded (``None``: the registry's file).
        metrics: the chosen metrics that need it.
    """

    name: str
    kind: str
    source: str | None
    metrics: tuple[str, ...]


@dataclass
class EvaluationResult:
    """Scores of one result set, or of two compared item by item.

    Attributes:
        rows: one dict per item (name, file paths, per-item scores); with two sets,
            each row has ``set`` = ``"A"`` or ``"B"``.
        summary: metric -> {n, mean, std, ci95_low, ci95_high} (set metrics: value, n);
            for a comparison: metric -> paired statistics.
        labels: the result set(s) scored.
    """

    mode: str
    metrics: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    labels: tuple[str, ...]
    compared: bool = False


class _NoProgress:
    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass


# --------------------------------------------------------------------------- validation


def choose_metrics(
    mode: str,
    requested: Sequence[str] | None,
    *,
    source: str | None = None,
    target: str | None = None,
) -> list[str]:
    """The metrics to compute, in the mode's order; ConfigError for an unknown name."""
    available = MODES[mode]
    if requested is None:
        chosen = [m for m in available if m not in OPT_IN_METRICS]
    else:
        chosen = []
        for name in requested:
            if name not in available:
                close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"unknown metric '{name}' for {mode} scoring{hint} "
                    f"(valid: {', '.join(available)})"
                )
            if name not in chosen:
                chosen.append(name)
    if mode != "edit":
        return chosen
    needs_source = ("clip_direction", "clip_accuracy")
    if source is None:
        explicit = [m for m in needs_source if requested and m in requested]
        if explicit:
            raise ConfigError(f"{', '.join(explicit)} needs --source (the prompt of the input)")
        chosen = [m for m in chosen if m not in needs_source]
    if any(m.startswith("clip") for m in chosen) and not target:
        raise ConfigError("CLIP edit scores need --target (the prompt of the edit)")
    return chosen


def check_output(path: str | os.PathLike[str] | None) -> Path | None:
    """The scores file, checked: ``.csv``/``.json``, not a folder, its folder writable."""
    if path is None:
        return None
    from brushwork.resources import probe_writable

    output = Path(path).expanduser()
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--output must end in .csv or .json, got {output.name}")
    if output.is_dir():
        raise OutputPathError(f"--output {output} is a folder; give a .csv or .json file")
    if not output.parent.is_dir():
        raise OutputPathError(f"the folder of {output} does not exist; create it first")
    probe_writable(output.parent, "scores file")
    return output


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header; ImageError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
            return image.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise ImageError(f"{path} is not a readable image: {reason}") from None


def _check_images(items: list[Item], reference: str) -> None:
    """Every file opens as an image; ``reference`` (content/input) has its result's aspect."""
    sizes: dict[Path, tuple[int, int]] = {}
    for item in items:
        for path in item.files.values():
            if path not in sizes:
                sizes[path] = _image_size(path)
        (rw, rh), (w, h) = sizes[item.files[reference]], sizes[item.files["result"]]
        _check_aspect((rw, rh), (w, h), item.files[reference], item.files["result"])


def _check_aspect(ref: tuple[int, int], res: tuple[int, int], ref_path: Path, res_path: Path):
    (rw, rh), (w, h) = ref, res
    if abs((rw / rh) / (w / h) - 1) > ASPECT_TOLERANCE:
        raise ImageError(
            f"{ref_path.name} is {rw}×{rh} px but its result {res_path.name} is {w}×{h} px: "
            "the aspect ratios differ, so they cannot be compared pixel for pixel; "
            "crop the result (or the input) to the same aspect ratio"
        )


def _pair(settings: EvaluationSettings, results: str) -> list[Item]:
    from brushwork.metrics.pairing import list_images, pair_by_name, pair_style_triples

    if settings.mode == "style":
        triples = pair_style_triples(
            list_images(settings.content, what="content"),
            list_images(settings.style, what="style"),
            list_images(results, what="results"),
        )
        items = [
            Item(t.name, {"content": t.content, "style": t.style, "result": t.result})
            for t in triples
        ]
        _check_images(items, "content")
        return items
    pairs = pair_by_name(
        list_images(settings.input, what="input"),
        list_images(results, what="results"),
        what="input",
    )
    items = [Item(p.name, {"input": p.reference, "result": p.result}) for p in pairs]
    _check_images(items, "input")
    return items


def _check_fid_sizes(items: list[Item], metrics: list[str], explicit: bool) -> list[str]:
    """Drop FID/ArtFID for too few images (or refuse if they were asked for)."""
    from brushwork.metrics.fid import MIN_FID_IMAGES

    wanted = [m for m in metrics if m in SET_METRICS]
    if not wanted:
        return metrics
    n_styles = len({it.files["style"] for it in items})
    # FID∞ fits FID over subsets smaller than the set: one result more than FID.
    need = MIN_FID_IMAGES + any(m.endswith("_inf") for m in wanted)
    if len(items) >= need and n_styles >= MIN_FID_IMAGES:
        return metrics
    if not explicit:
        return [m for m in metrics if m not in SET_METRICS]
    others = [m for m in metrics if m not in SET_METRICS]
    hint = f": --metrics {','.join(others)}" if others else ""
    raise ImageError(
        f"{' and '.join(wanted)} need at least {need} results and {MIN_FID_IMAGES} "
        f"style images (got {len(items)} results, {n_styles} style images); reliable values "
        f"need hundreds. Leave them out{hint}"
    )


def _check_same_items(items_a: list[Item], items_b: list[Item]) -> None:
    names_a, names_b = [it.name for it in items_a], [it.name for it in items_b]
    if names_a != names_b:
        only_a = sorted(set(names_a) - set(names_b))
        only_b = sorted(set(names_b) - set(names_a))
        raise ImageError(
            "--compare needs the same items in both folders; only in A: "
            f"{', '.join(only_a) or '–'}; only in B: {', '.join(only_b) or '–'}"
        )


# --------------------------------------------------------------------------- networks


def networks_needed(mode: str, metrics: Sequence[str], nets: NetworkSettings) -> list[Network]:
    """Every pretrained network the chosen ``metrics`` load, with the metrics using each."""
    from brushwork.metrics.clip import DEFAULT_CLIP_MODEL
    from brushwork.metrics.csd import CSD_WEIGHTS
    from brushwork.metrics.fid import INCEPTION_WEIGHTS
    from brushwork.metrics.lpips import LINEAR_WEIGHTS, TRUNK_WEIGHTS
    from brushwork.metrics.structure import DEFAULT_DINO_MODEL
    from brushwork.weights import hub_name_of

    def using(*names: str) -> tuple[str, ...]:
        return tuple(m for m in metrics if m in names)

    def hub(model_id: str, users: tuple[str, ...]) -> Network:
        return Network(hub_name_of(model_id) or model_id, "hub", model_id, users)

    lpips_users = using(*NEEDS_LPIPS)
    candidates = [
        Network(TRUNK_WEIGHTS[nets.lpips_net], "file", nets.lpips_trunk_weights, lpips_users),
        Network(LINEAR_WEIGHTS[nets.lpips_net], "file", nets.lpips_weights, lpips_users),
        Network("vgg19", "file", nets.vgg_weights, using("content_loss", "gram_loss", "cfsd")),
        Network(INCEPTION_WEIGHTS["fid"], "file", nets.inception_weights, using("fid", "fid_inf")),
        Network(
            INCEPTION_WEIGHTS["art"],
            "file",
            nets.art_inception_weights,
            using("artfid", "artfid_inf"),
        ),
        Network(CSD_WEIGHTS, "file", nets.csd_weights, using("csd")),
        hub(nets.clip_model or DEFAULT_CLIP_MODEL, tuple(m for m in metrics if "clip" in m)),
        hub(nets.dino_model or DEFAULT_DINO_MODEL, using("structure", "leakage")),
    ]
    if mode == "video":
        return []
    return [network for network in candidates if network.metrics]


def _file_missing(network: Network) -> str | None:
    """Why a weight file cannot be had here, or ``None`` when it is present/downloadable."""
    from brushwork import weights
    from brushwork.hub import url_reachable

    spec = weights.get(network.name)
    if network.source is not None:
        given = Path(network.source).expanduser()
        if given.is_dir():
            given = given / spec.filename
        return None if given.is_file() else f"{given} does not exist"
    if weights.status(network.name)[0] is not None:
        return None
    if weights.is_offline():
        return f"{spec.filename}, {spec.size_text}, not cached"
    if not url_reachable(spec.url):
        return f"{spec.filename}, {spec.size_text}, not cached and its server did not answer"
    return None


def _hub_missing(network: Network) -> str | None:
    from brushwork import weights
    from brushwork.hub import cached_snapshot, looks_like_path, network_available

    model_id = str(network.source)
    if looks_like_path(model_id):
        folder = Path(model_id).expanduser()
        return None if folder.is_dir() else f"folder {folder} does not exist"
    if cached_snapshot(model_id) is not None:
        return None
    if weights.is_offline() or not network_available():
        return f"Hub model {model_id}, not in the Hugging Face cache"
    return None


def missing_networks(needed: Sequence[Network]) -> list[tuple[Network, str]]:
    """The networks of ``needed`` that cannot be loaded here, each with the reason."""
    missing = []
    for network in needed:
        reason = _file_missing(network) if network.kind == "file" else _hub_missing(network)
        if reason is not None:
            missing.append((network, reason))
    return missing


def check_networks(mode: str, metrics: list[str], nets: NetworkSettings) -> None:
    """Refuse, in one line, when any network the chosen metrics need is missing."""
    from brushwork.hub import offline_reason
    from brushwork.weights import flag_for

    missing = missing_networks(networks_needed(mode, metrics, nets))
    if not missing:
        return
    listed = []
    for network, reason in missing:
        flag = flag_for(network.name)
        how = f"; give it with {flag}" if flag else ""
        listed.append(f"{network.name} ({reason}{how})")
    blocked = {m for network, _ in missing for m in network.metrics}
    runnable = [m for m in metrics if m not in blocked]
    names = list(dict.fromkeys(n.name for n, _ in missing if n.source is None or n.kind == "hub"))
    fetch = f"run `brushwork weights download {' '.join(names)}` on a machine with internet, "
    skip = (
        f"or score without them: --metrics {','.join(runnable)}"
        if runnable
        else "no chosen metric can run without them"
    )
    raise WeightsError(
        f"{len(missing)} pretrained network{'s' if len(missing) > 1 else ''} needed by "
        f"{', '.join(sorted(blocked, key=metrics.index))} "
        f"{'are' if len(missing) > 1 else 'is'} not available ({offline_reason()}): "
        f"{'; '.join(listed)}; {fetch if names else ''}{skip}"
    )


class MetricNetworks:
    """The networks the chosen metrics need, loaded once (check them first with
    :func:`check_networks`); attributes are ``None`` where no chosen metric needs them."""

    def __init__(self, metrics: list[str], nets: NetworkSettings, device: Any) -> None:
        self.device = device
        self.lpips = self.vgg = self.clip = self.dino = self.csd = None
        #: Set metric -> its Inception (metrics of one variant share one network).
        self.inception: dict[str, Any] = {}
        if any(m in metrics for m in NEEDS_LPIPS):
            from brushwork.metrics.lpips import load_lpips

            self.lpips = load_lpips(
                nets.lpips_net,
                linear_weights=nets.lpips_weights,
                trunk_weights=nets.lpips_trunk_weights,
                device=device,
            )
        if any(m in metrics for m in ("content_loss", "gram_loss", "cfsd")):
            from brushwork.encoders import load_vgg_encoder

            self.vgg = load_vgg_encoder("vgg19", weights=nets.vgg_weights, device=device)
        loaded: dict[str, Any] = {}
        for metric in (m for m in SET_METRICS if m in metrics):
            from brushwork.metrics.fid import load_inception

            variant = INCEPTION_OF[metric]
            if variant not in loaded:
                fid = variant == "fid"
                loaded[variant] = load_inception(
                    variant,
                    weights=nets.inception_weights if fid else nets.art_inception_weights,
                    input_size=nets.inception_size if fid else "default",
                    device=device,
                )
            self.inception[metric] = loaded[variant]
        if "csd" in metrics:
            from brushwork.metrics.csd import load_csd

            self.csd = load_csd(nets.csd_weights, device=device)
        if any(m.startswith("clip") for m in metrics):
            from brushwork.metrics.clip import DEFAULT_CLIP_MODEL, load_clip

            self.clip = load_clip(nets.clip_model or DEFAULT_CLIP_MODEL, device=device)
        if "structure" in metrics or "leakage" in metrics:
            from brushwork.metrics.structure import DEFAULT_DINO_MODEL, load_dino

            self.dino = load_dino(nets.dino_model or DEFAULT_DINO_MODEL, device=device)


# --------------------------------------------------------------------------- scoring


def _fit(reference, result, ref_path: Path, result_path: Path):
    """``reference`` (3, h, w) resized to ``result``'s (3, H, W) (aspect ratios must agree)."""
    from brushwork.image import resize_to

    (rh, rw), (h, w) = reference.shape[-2:], result.shape[-2:]
    if (rh, rw) == (h, w):
        return reference
    _check_aspect((rw, rh), (w, h), ref_path, result_path)
    return resize_to(reference, h, w)


def score_style_items(
    items: list[Item],
    metrics: list[str],
    models: MetricNetworks,
    batch_size: int = 8,
    progress: Any = None,
) -> dict[str, float]:
    """Fill each item's ``scores`` with the per-item metrics; return the set scores.

    Args:
        items: (content, style, result) files; ``scores`` may already hold values
            (ArtFID reads each item's ``lpips`` when ``"lpips"`` is not computed here).
        metrics: checked names (:func:`choose_metrics`, :func:`check_networks`).
        models: the networks, loaded once for many calls.
        batch_size: Inception batch for the style images of the set metrics.
        progress: rich-like ``add_task``/``advance``; ``None``: none.

    Returns:
        The set metrics (``fid``, ``artfid`` and ArtFID's FID ``artfid_fid``, …), or {}.
    """
    progress = progress or _NoProgress()
    import numpy as np
    import torch

    from brushwork.image import load_image, resize_long_side
    from brushwork.metrics.ssim import ssim
    from brushwork.metrics.style import (
        color_histogram_distance,
        content_feature_loss,
        gram_style_loss,
    )

    device = models.device
    features: dict[int, list] = {}
    style_cache: dict[Path, torch.Tensor] = {}
    task = progress.add_task("scoring", total=len(items))
    with torch.no_grad():
        for item in items:
            result = load_image(item.files["result"])
            content = _fit(
                load_image(item.files["content"]),
                result,
                item.files["content"],
                item.files["result"],
            )
            if item.files["style"] not in style_cache:
                style_cache[item.files["style"]] = load_image(item.files["style"])
            style_full = style_cache[item.files["style"]]
            style = resize_long_side(style_full, max(result.shape[-2:]))
            r, c, s = (x[None].to(device) for x in (result, content, style))
            scores = item.scores
            if "ssim" in metrics:
                scores["ssim"] = float(ssim(result, content))
            if models.lpips is not None:
                scores["lpips"] = float(models.lpips(r, c)[0])
            if "lpips_gray" in metrics:
                from brushwork.metrics.lpips import gray_lpips

                scores["lpips_gray"] = float(gray_lpips(models.lpips, r, c)[0])
            if "cfsd" in metrics:
                from brushwork.metrics.cfsd import cfsd

                scores["cfsd"] = float(cfsd(models.vgg, r, c)[0])
            if "csd" in metrics:
                s_full = style_full[None].to(device)
                scores["csd"] = float(models.csd.style_similarity(r, s_full)[0])
            if "content_loss" in metrics:
                scores["content_loss"] = float(content_feature_loss(models.vgg, r, c)[0])
            if "gram_loss" in metrics:
                scores["gram_loss"] = float(gram_style_loss(models.vgg, r, s)[0])
            if "clip_style" in metrics:
                scores["clip_style"] = float(models.clip.image_similarity(r, s)[0])
            if "leakage" in metrics:
                from brushwork.metrics.leakage import content_leakage, crop_to_match

                s_fit = crop_to_match(style_full, *result.shape[-2:])[None].to(device)
                scores["leakage"] = float(content_leakage(models.dino, r, c, s_fit)[0])
            if "histogan" in metrics:
                from brushwork.metrics.histogan import histogan_loss

                scores["histogan"] = float(histogan_loss(result, style_full))
            if "histogram" in metrics:
                scores["histogram"] = float(color_histogram_distance(result, style_full))
            for model in {id(m): m for m in models.inception.values()}.values():
                features.setdefault(id(model), []).append(model(r).double().cpu().numpy()[0])
            progress.advance(task)
    set_scores: dict[str, float] = {}
    if models.inception:
        from brushwork.metrics.fid import (
            art_fid,
            fid_from_features,
            fid_infinity,
            inception_features,
        )

        styles = sorted(style_cache)
        style_feats: dict[int, Any] = {}
        for metric, model in models.inception.items():
            if id(model) not in style_feats:
                style_feats[id(model)] = inception_features(
                    model,
                    lambda i: style_cache[styles[i]],
                    count=len(styles),
                    batch_size=batch_size,
                    device=device,
                )
            reference, results = style_feats[id(model)], np.stack(features[id(model)])
            if metric.endswith("_inf"):
                fid = fid_infinity(reference, results).value
            else:
                fid = fid_from_features(reference, results)
            if metric.startswith("fid"):
                set_scores[metric] = fid
            else:
                lpips_mean = float(np.mean([it.scores["lpips"] for it in items]))
                set_scores[metric] = art_fid(fid, lpips_mean)
                set_scores[f"{metric}_fid"] = fid
    if "lpips" not in metrics:  # computed only for ArtFID
        for item in items:
            item.scores.pop("lpips", None)
    return set_scores


def _score_edit(
    items: list[Item],
    metrics: list[str],
    models: MetricNetworks,
    settings: EvaluationSettings,
    progress: Any,
) -> dict[str, float]:
    import torch

    from brushwork.image import load_image

    device = models.device
    task = progress.add_task("scoring", total=len(items))
    with torch.no_grad():
        for item in items:
            result = load_image(item.files["result"])
            source = _fit(
                load_image(item.files["input"]), result, item.files["input"], item.files["result"]
            )
            r, x = result[None].to(device), source[None].to(device)
            scores = item.scores
            if "clip_text" in metrics:
                scores["clip_text"] = float(models.clip.text_score(r, settings.target)[0])
            if "clip_direction" in metrics:
                scores["clip_direction"] = float(
                    models.clip.direction_score(x, r, settings.source, settings.target)[0]
                )
            if "clip_accuracy" in metrics:
                scores["clip_accuracy"] = float(
                    models.clip.accuracy(r, settings.source, settings.target)[0]
                )
            if "structure" in metrics:
                scores["structure"] = float(models.dino.distance(r, x)[0])
            if "lpips" in metrics:
                scores["lpips"] = float(models.lpips(r, x)[0])
            progress.advance(task)
    return {}


def _score_video(settings: EvaluationSettings) -> tuple[list[Item], dict[str, float]]:
    from brushwork.metrics.warping import read_video_frames, warping_error

    frames = read_video_frames(settings.video)
    stylised = read_video_frames(settings.results[0])
    result = warping_error(frames, stylised, method=settings.flow)
    files = {"input": Path(str(settings.video)), "result": Path(settings.results[0])}
    items = [
        Item(f"frame_{t:05d}", dict(files), {"warping_error": value})
        for t, value in enumerate(result.per_pair, start=1)
    ]
    return items, {"warping_error": result.mean}


# --------------------------------------------------------------------------- summaries


def _rows(items: list[Item], metrics: list[str], label: str | None = None) -> list[dict]:
    rows = []
    for item in items:
        row: dict[str, Any] = {"name": item.name}
        if label is not None:
            row["set"] = label
        row.update({k: str(v) for k, v in item.files.items()})
        row.update({m: item.scores.get(m, math.nan) for m in metrics if m not in SET_METRICS})
        rows.append(row)
    return rows


def _summary(items: list[Item], metrics: list[str], set_scores: dict[str, float]) -> dict:
    from brushwork.metrics.summary import summarize

    out: dict[str, Any] = {}
    for m in metrics:
        if m in SET_METRICS:
            if m in set_scores:
                out[m] = {"value": set_scores[m], "n": len(items)}
        else:
            out[m] = summarize([it.scores.get(m, math.nan) for it in items]).as_dict()
    for metric in ("artfid", "artfid_inf"):
        if f"{metric}_fid" in set_scores and metric in out:
            out[metric]["fid_art_inception"] = set_scores[f"{metric}_fid"]
    if "warping_error" in set_scores:
        out["warping_error"]["video_mean"] = set_scores["warping_error"]
    return out


def _comparison(
    metrics: list[str], a: tuple[list[Item], dict], b: tuple[list[Item], dict]
) -> dict[str, Any]:
    from brushwork.metrics.summary import paired_comparison

    (items_a, sets_a), (items_b, sets_b) = a, b
    comparison: dict[str, Any] = {}
    for m in metrics:
        if m in SET_METRICS:
            if m in sets_a and m in sets_b:
                comparison[m] = {"value_a": sets_a[m], "value_b": sets_b[m]}
            continue
        c = paired_comparison(
            [it.scores.get(m, math.nan) for it in items_a],
            [it.scores.get(m, math.nan) for it in items_b],
        )
        comparison[m] = {
            "n": c.n,
            "mean_a": c.mean_a,
            "mean_b": c.mean_b,
            "difference": c.difference.as_dict(),
            "t_statistic": c.t_statistic,
            "t_pvalue": c.t_pvalue,
            "wilcoxon_pvalue": c.wilcoxon_pvalue,
        }
    return comparison


def clean(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (for JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def write_scores(path: str | os.PathLike[str], result: EvaluationResult) -> Path:
    """Write the per-item rows (and, in JSON, the summary) atomically to ``path``."""
    from brushwork.atomic import write_text_atomic

    target = Path(path)
    if target.suffix.lower() == ".json":
        payload = {"items": [clean(row) for row in result.rows], "summary": clean(result.summary)}
        text = json.dumps(payload, indent=2, default=_jsonable)
    else:
        buffer = io.StringIO()
        fields: list[str] = []
        for row in result.rows:
            fields += [k for k in row if k not in fields]
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(result.rows)
        text = buffer.getvalue()
    write_text_atomic(target, text)
    return target


# --------------------------------------------------------------------------- entry point


def evaluate(settings: EvaluationSettings, progress: Any = None) -> EvaluationResult:
    """Check everything, load the networks, score, summarise and write the scores file.

    Args:
        settings: what to score.
        progress: an object with rich's ``add_task(description, total)`` and
            ``advance(task)`` (e.g. :func:`brushwork.cli.progress.step_progress`);
            ``None``: no progress display.

    Raises:
        ConfigError, ImageError, OutputPathError: bad settings or inputs (before any work).
        WeightsError: every missing network at once, before any loads.
    """
    from brushwork.devices import resolve_device

    if settings.mode not in MODES:
        raise ConfigError(f"unknown mode '{settings.mode}' (valid: {', '.join(MODES)})")
    if settings.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {settings.batch_size}")
    progress = progress or _NoProgress()
    metrics = choose_metrics(
        settings.mode, settings.metrics, source=settings.source, target=settings.target
    )
    device = resolve_device(settings.device)
    output = check_output(settings.output)

    if settings.mode == "video":
        for path in (settings.video, settings.results[0]):
            if not Path(str(path)).expanduser().is_file():
                raise ImageError(f"video {path} does not exist")
        items, set_scores = _score_video(settings)
        result = EvaluationResult(
            "video", metrics, _rows(items, metrics), _summary(items, metrics, set_scores),
            settings.results,
        )  # fmt: skip
        return _written(result, output)

    item_sets = [_pair(settings, results) for results in settings.results]
    if len(item_sets) == 2:
        _check_same_items(*item_sets)
    if settings.mode == "style":
        for items in item_sets:
            metrics = _check_fid_sizes(items, metrics, explicit=settings.metrics is not None)
    check_networks(settings.mode, metrics, settings.networks)

    models = MetricNetworks(metrics, settings.networks, device)
    scored = []
    for items in item_sets:
        if settings.mode == "style":
            set_scores = score_style_items(items, metrics, models, settings.batch_size, progress)
        else:
            set_scores = _score_edit(items, metrics, models, settings, progress)
        scored.append((items, set_scores))

    if len(scored) == 1:
        items, set_scores = scored[0]
        summary = _summary(items, metrics, set_scores)
        result = EvaluationResult(
            settings.mode, metrics, _rows(items, metrics), summary, settings.results
        )
    else:
        rows = _rows(scored[0][0], metrics, "A") + _rows(scored[1][0], metrics, "B")
        summary = _comparison(metrics, scored[0], scored[1])
        result = EvaluationResult(
            settings.mode, metrics, rows, summary, settings.results, compared=True
        )
    return _written(result, output)


def score_triples(
    triples: Sequence[tuple[Any, Any, Any] | Item],
    metrics: Sequence[str] | None = None,
    *,
    networks: NetworkSettings | None = None,
    device: str = "auto",
    batch_size: int = 8,
    progress: Any = None,
) -> EvaluationResult:
    """Score (content, style, result) image files with style metrics chosen by name.

    The library form of ``brushwork evaluate`` for callers that pair files themselves
    (``brushwork benchmark``). Every check comes before any network loads: metric names,
    images (readable, aspect ratios), set-metric counts, networks (one WeightsError line).

    Args:
        triples: ``(content, style, result)`` paths, or :class:`Item` s.
        metrics: names from :data:`STYLE_METRICS` (``None``: the defaults).

    Returns:
        rows: one dict per triple (name, content, style, result, per-item scores);
        summary: metric -> {n, mean, std, ci95_low, ci95_high}, set metrics {value, n}.
    """
    from brushwork.devices import resolve_device

    nets = networks or NetworkSettings()
    chosen = choose_metrics("style", metrics)
    items = []
    for triple in triples:
        if isinstance(triple, Item):
            items.append(triple)
            continue
        content, style, result = (Path(x) for x in triple)
        files = {"content": content, "style": style, "result": result}
        items.append(Item(result.stem, files))
    if not items:
        raise ImageError("nothing to score: no (content, style, result) triples given")
    _check_images(items, "content")
    chosen = _check_fid_sizes(items, chosen, explicit=metrics is not None)
    check_networks("style", chosen, nets)
    models = MetricNetworks(chosen, nets, resolve_device(device))
    set_scores = score_style_items(items, chosen, models, batch_size, progress or _NoProgress())
    rows = _rows(items, chosen)
    return EvaluationResult("style", chosen, rows, _summary(items, chosen, set_scores), ())


def _written(result: EvaluationResult, output: Path | None) -> EvaluationResult:
    if output is not None:
        write_scores(output, result)
    return result
