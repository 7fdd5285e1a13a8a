"""The study on transformer backbones (tiny SD3, Flux.1 and Flux.2 klein folders): loading
through the real loader, size rules and memory read from the folder before loading,
``study run`` end to end with the family recorded, kill and resume, Flux's guidance
embedding, and the report with several backbones side by side."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork.cli.main import main
from brushwork.experiments.store import DB_NAME, StudyStore
from cli_testing import error_line

CONTENTS, STYLES = "cow,giraffe", "Cubism,Rembrandt"


def _run_args(model, out, *extra, templates="1"):
    return ["study", "run", "--model", str(model), "--contents", CONTENTS, "--styles", STYLES,
            "--templates", templates, "--steps", "1", "--size", "32", "--precision", "fp32",
            "--device", "cpu", "-o", str(out), "-q", *extra]  # fmt: skip


def _rows(folder: Path) -> list[tuple]:
    with StudyStore(folder, create=False) as store:
        rows = store.rows()
    keys = ("prompt_index", "rule", "mode", "threshold", "iou_cs", "miou_b", "miou_bcs",
            "area_content", "area_style", "delta")  # fmt: skip
    return list(zip(*(rows[k] for k in keys), strict=True))


# ------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", ["sd3_model", "flux_model"])
def test_saved_transformer_pipelines_load_with_their_t5_tokenizer(name, request, tmp_path):
    from tiny_t5 import tiny_t5_tokenizer

    from brushwork.diffusion.pipelines import load_pipeline, pipeline_family

    folder = request.getfixturevalue(name)
    pipe = load_pipeline(str(folder), dtype="fp32", device="cpu")
    assert pipeline_family(pipe) == {"sd3_model": "sd3", "flux_model": "flux"}[name]
    assert pipe.transformer.dtype == torch.float32
    t5 = pipe.tokenizer_3 if name == "sd3_model" else pipe.tokenizer_2
    built = tiny_t5_tokenizer(tmp_path / "t5")
    prompt = "a cow on a hill in the analytical cubism style"
    assert t5(prompt).input_ids == built(prompt).input_ids
    assert t5.convert_ids_to_tokens(t5(prompt).input_ids) == [*built.tokenize(prompt), "</s>"]
    assert (t5.eos_token, t5.pad_token, t5.unk_token) == ("</s>", "<pad>", "<unk>")


def test_precision_applies_to_transformer_pipelines(flux_model):
    from brushwork.diffusion.pipelines import load_pipeline

    pipe = load_pipeline(str(flux_model), dtype="bf16", device="cpu")
    assert pipe.transformer.dtype == pipe.text_encoder_2.dtype == torch.bfloat16


# ------------------------------------------------------------------ sizes and memory


def test_size_rules_read_from_transformer_folders(sd3_model, flux_model):
    from brushwork.diffusion.sizes import known_facts, model_facts

    sd3, flux = model_facts(str(sd3_model)), model_facts(str(flux_model))
    # tiny VAEs do not downsample (factor 1); SD3's patch 2, Flux's 2×2 packing
    assert (sd3.family, sd3.side_multiple, sd3.maximum, sd3.default_side) == ("sd3", 2, 192, 32)
    assert (flux.family, flux.side_multiple, flux.maximum) == ("flux", 2, None)
    for hub in ("stabilityai/stable-diffusion-3.5-medium", "black-forest-labs/FLUX.1-dev"):
        assert known_facts(hub).side_multiple == 16  # VAE factor 8 × 2
    assert model_facts("black-forest-labs/FLUX.1-dev") is None  # no config read for hub ids


@pytest.mark.parametrize(
    ("model", "size", "message"),
    [
        ("stabilityai/stable-diffusion-3.5-medium", "520",
         "--size 520 is not a multiple of 16 (this model's VAE factor 8 × patch size 2); "
         "use 512 or 528"),
        ("black-forest-labs/FLUX.1-schnell", "1024x1000",
         "--size 1024x1000: the width 1000 is not a multiple of 16 (this model's VAE factor 8 "
         "× 2×2 latent packing); use 1024x992 or 1024x1008"),
        ("sd3", "200",
         "--size 200 is too large: sides must be at most 192 px (this model's position "
         "embedding: 96 patches × patch size 2 × VAE factor 1); use 192"),
    ],
)  # fmt: skip
def test_transformer_sizes_refused_before_loading(sd3_model, tmp_path, capsys, model, size,
                                                  message):  # fmt: skip
    out = tmp_path / "run"
    args = _run_args(sd3_model if model == "sd3" else model, out)
    args[args.index("--size") + 1] = size
    assert main(args) == 1
    err = capsys.readouterr().err
    assert error_line(err) == f"error: {message}" and "Traceback" not in err
    assert not out.exists()


def test_transformer_memory_estimate_from_headers_and_tokens(sd3_model, flux_model):
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.diffusion.sizes import (
        estimate_model_memory,
        estimate_transformer_memory,
        model_facts,
        weight_parameters,
    )

    for folder, text, copies in ((sd3_model, 77 + 256, 2), (flux_model, 512, 1)):
        pipe = load_pipeline(str(folder), dtype="fp32", device="cpu")
        tensors = {  # what loads: parameters and buffers, tied weights once
            t.data_ptr(): t.numel() for c in pipe.components.values()
            if isinstance(c, torch.nn.Module) for t in c.state_dict().values()
        }  # fmt: skip
        parameters = sum(tensors.values())
        assert weight_parameters(str(folder)) == parameters  # headers, no weight read
        facts = model_facts(str(folder))
        h, w, b = 64, 32, 4
        tokens = h * w / facts.side_multiple**2
        activations = (
            2 * copies * (tokens + text) * facts.heads * facts.head_dim * 16 * b
            + 2 * copies * facts.heads * tokens * text * 4 * 2
            + 2 * h * w * 128 * 6 * b
        )
        expected = int(parameters * b + activations)
        got = estimate_model_memory(str(folder), h, w, bytes_per_value=b, batch=2)
        assert got == expected
        assert estimate_transformer_memory(h, w, facts, parameters=parameters, bytes_per_value=b,
                                           batch=2) == expected  # fmt: skip


def test_transformer_memory_limit_refuses_before_loading(flux_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*_run_args(flux_model, out), "--memory-limit", "0.001"]) == 1
    line = error_line(capsys.readouterr().err)
    assert "study at 32x32 needs about" in line and "--memory-limit" in line
    assert not out.exists()


# -------------------------------------------------------------------- study run


@pytest.fixture(scope="module")
def backbone_runs(
    study_model, sd3_model, flux_model, klein_model, tmp_path_factory
) -> dict[str, Path]:
    """Uninterrupted CLI runs of the same 4-prompt grid on the UNet, SD3, Flux.1 and
    Flux.2 folders."""
    root = tmp_path_factory.mktemp("backbones")
    runs = {}
    models = (("sd", study_model), ("sd3", sd3_model), ("flux", flux_model), ("flux2", klein_model))
    for name, model in models:
        assert main(_run_args(model, root / name)) == 0
        runs[name] = root / name
    return runs


@pytest.mark.parametrize(
    ("name", "family", "pipeline", "stream", "blocks"),
    [
        ("sd3", "sd3", "StableDiffusion3Pipeline", "clip", "joint"),
        ("flux", "flux", "FluxPipeline", "t5", "joint+single"),
        ("flux2", "flux2", "Flux2KleinPipeline", "qwen", "joint+single"),
    ],
)
def test_study_run_on_transformers_records_the_family(
    backbone_runs, capsys, name, family, pipeline, stream, blocks
):
    folder = backbone_runs[name]
    rows = _rows(folder)
    assert len(rows) == 4 * 2 * 18 == len({r[:4] for r in rows})  # prompts × rules × slices
    assert all(0 <= r[4] <= 1 and 0 <= r[5] <= 1 for r in rows)
    assert all(math.isclose(r[9], r[5] - r[4], abs_tol=1e-12) for r in rows)
    with StudyStore(folder, create=False) as store:
        info = store.model_info()
    assert info == {"family": family, "pipeline": pipeline, "stream": stream,
                    "blocks": blocks.split("+")}  # fmt: skip
    assert main(["study", "status", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"family:   {family} ({pipeline}; maps from the {stream} stream, blocks {blocks})" in out
    assert "4 total, 4 done, 0 pending, 0 failed" in out


def test_status_before_any_batch_names_the_family_from_the_configs(flux_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*_run_args(flux_model, out), "--limit", "1", "--engine", "local"]) == 0
    with StudyStore(out, create=False) as store:  # as before the first batch stored anything
        store.db.execute("DELETE FROM meta WHERE key='model'")
    assert main(["study", "status", str(out)]) == 0
    assert "family:   flux (from the model's name or configs" in capsys.readouterr().out


def test_resume_with_another_family_is_refused(flux_model, sd3_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*_run_args(flux_model, out), "--limit", "1"]) == 0
    with StudyStore(out, create=False) as store:
        info = store.model_info()
        store.db.execute(
            "UPDATE meta SET value=? WHERE key='model'",
            ('{"family": "sd3", "pipeline": "X", "stream": "clip", "blocks": []}',),
        )
        assert info["family"] == "flux"  # fmt: skip
    assert main(_run_args(flux_model, out)) == 1
    line = error_line(capsys.readouterr().err)
    assert "was made with another model (blocks:" in line and "family: stored 'sd3'" in line
    with StudyStore(out, create=False) as store:
        assert store.counts()["done"] == 1


def test_flux_kill_and_resume_equals_uninterrupted(flux_model, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert main(_run_args(flux_model, reference, templates="1,4")) == 0  # 8 prompts
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = _run_args(flux_model, out, templates="1,4")
    command = [sys.executable, "-m", "brushwork.cli.main", *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (out / DB_NAME).exists():
                with sqlite3.connect(out / DB_NAME, timeout=10) as db:
                    try:
                        query = "SELECT COUNT(*) FROM prompts WHERE state='done'"
                        done = db.execute(query).fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        done = 0
                if done >= 2:
                    break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert 2 <= done < 8, "the run should be killed mid-way"
    with StudyStore(out, create=False) as store:
        partial = store.counts()
        assert store.model_info()["family"] == "flux"
    assert partial["rows"] == partial["done"] * 36  # no half-written prompt
    assert main(args) == 0  # resume in-process
    assert _rows(out) == _rows(reference)  # row for row, nothing twice


def test_flux_guidance_is_the_embedding_not_cfg(tmp_path):
    """schnell-shaped (no guidance embedding): the scale changes nothing; dev-shaped: it
    is the embedding's value (one transformer pass per step either way, no CFG batch)."""
    from tiny_flux import build_flux_pipeline

    from brushwork.experiments.grid import TEMPLATES, build_grid
    from brushwork.experiments.runner import StudySettings, compute_batch

    specs = build_grid(templates=[TEMPLATES[0]], contents=["cow"], styles=["Cubism"])

    def rows(pipe, scale):
        settings = StudySettings(model="tiny", steps=1, height=32, width=32, rule="mean",
                                 guidance_scale=scale)  # fmt: skip
        calls = []
        hook = pipe.transformer.register_forward_pre_hook(
            lambda m, a, k: calls.append(k["hidden_states"].shape[0]), with_kwargs=True
        )
        try:
            result = compute_batch(pipe, specs, settings)
        finally:
            hook.remove()
        assert calls == [1] and list(result.done) == [0]
        return [tuple(r.values()) for r in result.rows]

    schnell = build_flux_pipeline(tmp_path / "schnell")
    assert rows(schnell, 1.0) == rows(schnell, 7.0)
    dev = build_flux_pipeline(tmp_path / "dev", guidance_embeds=True)
    assert rows(dev, 1.0) != rows(dev, 7.0)


# ------------------------------------------------------------------------ report


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _slice_deltas(folder: Path, rule: str, mode: str, threshold: float) -> dict[str, tuple]:
    with StudyStore(folder, create=False) as store:
        rows = store.rows()
    return {
        rows["prompt"][i]: (rows["miou_b"][i] - rows["iou_cs"][i], rows["content"][i],
                            rows["style"][i])
        for i in range(len(rows["prompt"]))
        if (rows["rule"][i], rows["mode"][i]) == (rule, mode)
        and abs(rows["threshold"][i] - threshold) < 1e-9
    }  # fmt: skip


def test_report_puts_backbones_side_by_side(backbone_runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from brushwork.experiments.report import REPORT_FILES

    folders = [backbone_runs[n] for n in ("sd", "sd3", "flux", "flux2")]
    out = tmp_path / "report"
    assert main(["study", "report", *map(str, folders), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    assert all((out / f).stat().st_size > 0 for f in REPORT_FILES)
    labels = ["sd (sd)", "sd3 (sd3)", "flux (flux)", "flux2 (flux2)"]
    page = (out / "index.html").read_text()
    assert "Backbones side by side" in page and all(label in page for label in labels)
    assert page.count("data:image/png;base64,") == 5
    assert {r["family"] for r in _csv(out / "summary.csv")} == {"sd", "sd3", "flux", "flux2"}

    runs = list(zip(labels, folders, strict=True))
    deltas = {label: _slice_deltas(f, "mean", "fixed", 0.4) for label, f in runs}
    by_threshold = _csv(out / "backbones_by_threshold.csv")
    assert len(by_threshold) == 2 * 9 and {r["rule"] for r in by_threshold} == {
        "mean"
    }  # the CLI default
    for record in by_threshold:
        per_run = {
            label: _slice_deltas(f, "mean", record["mode"], float(record["threshold"]))
            for label, f in runs
        }
        means = {label: np.mean([d for d, _, _ in v.values()]) for label, v in per_run.items()}
        for label in labels:
            assert float(record[f"delta[{label}]"]) == pytest.approx(means[label], abs=1e-12)
            assert int(record[f"n[{label}]"]) == 4
        for label in labels[1:]:
            key = f"{label} - {labels[0]}"
            assert float(record[f"diff[{key}]"]) == pytest.approx(
                means[label] - means[labels[0]], abs=1e-12
            )
            assert int(record[f"diff_n[{key}]"]) == 4

    for column, position, words in (("content", 1, ("cow", "giraffe")),
                                    ("style", 2, ("Cubism", "Rembrandt"))):  # fmt: skip
        table = _csv(out / f"backbones_per_{column}.csv")
        assert [r[column] for r in table] == list(words)
        for record in table:
            means = {
                label: np.mean([v[0] for v in d.values() if v[position] == record[column]])
                for label, d in deltas.items()
            }
            for label in labels:
                assert float(record[f"delta[{label}]"]) == pytest.approx(means[label], abs=1e-12)
            key = f"{labels[2]} - {labels[0]}"
            assert float(record[f"diff[{key}]"]) == pytest.approx(
                means[labels[2]] - means[labels[0]], abs=1e-12
            )
