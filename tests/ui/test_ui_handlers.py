"""The tabs' handlers as plain functions, on tiny real models (no browser)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.ui import attention, edit, evaluate, generate, study, transfer
from brushwork.ui.common import finish


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _adain(session, pictures, adain_file, **changes):
    values = dict(
        content=str(pictures["content"]),
        styles=[str(pictures["style"])],
        method="adain",
        model_file=str(adain_file),
        alpha=0.8,
    )
    return finish(transfer.stylize(session, **{**values, **changes}))


def test_adain_is_the_library_call_and_its_model_is_cached(session, pictures, adain_file):
    from brushwork.image import load_image
    from brushwork.transfer.stylize import load_stylizer

    image, files, command, status = _adain(session, pictures, adain_file)
    assert files == [image] and status == "done: 48×40 (adain)"
    assert command.startswith("brushwork stylize content.png --method adain --model ")
    assert "--style style.png --alpha 0.8 -o result.png" in command
    stylizer = load_stylizer(
        adain_file, method="adain", styles=[load_image(pictures["style"])], alpha=0.8, device="cpu"
    )
    direct = stylizer(load_image(pictures["content"])[None])[0]
    expected = (direct.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(_pixels(image), expected)
    again, *_ = _adain(session, pictures, adain_file)
    assert np.array_equal(_pixels(again), _pixels(image))
    assert session.models.loads == 1  # the second run reused the loaded model
    _adain(session, pictures, adain_file, alpha=0.3)
    assert session.models.loads == 2


def test_transfer_size_blend_and_colour(session, pictures, adain_file):
    image, *_ = _adain(
        session,
        pictures,
        adain_file,
        styles=[str(pictures["style"]), str(pictures["style2"])],
        style_weights="0.7, 0.3",
        preserve_color="luminance",
        size=24,
    )
    assert Image.open(image).size == (24, 20)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"content": None}, "no content image: upload an image first"),
        ({"styles": None}, "adain needs a style image"),
        ({"model_file": "/nowhere/model.safetensors"}, "/nowhere/model.safetensors"),
        ({"method": "johnson", "model_file": ""}, "Johnson needs its trained model file"),
        ({"style_weights": "0.7, lots"}, "style weights must be numbers"),
    ],
)
def test_transfer_errors_are_one_line(session, pictures, adain_file, changes, message):
    with pytest.raises(gr.Error) as caught:
        _adain(session, pictures, adain_file, **changes)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_a_broken_upload_names_the_file(session, pictures, adain_file):
    with pytest.raises(gr.Error, match="is truncated or corrupt"):
        _adain(session, pictures, adain_file, styles=[str(pictures["bad"])])


def test_gatys_previews_then_result_and_cancel(session, pictures, vgg19_file):
    run = transfer.stylize(
        session,
        str(pictures["content"]),
        [str(pictures["style"])],
        "gatys",
        weights=str(vgg19_file[0]),
        size=32,
        steps=4,
        seed=0,
    )
    outputs = list(run)
    previews = [o[0] for o in outputs if isinstance(o[0], np.ndarray)]
    assert len(previews) >= 2 and previews[0].shape[2] == 3
    final, _files, command, _ = outputs[-1]
    assert Image.open(final).size == (32, 27)
    assert command.startswith("brushwork transfer content.png --style style.png --size 32")

    run = transfer.stylize(
        session, str(pictures["content"]), [str(pictures["style"])], "gatys",
        weights=str(vgg19_file[0]), size=32, steps=400,
    )  # fmt: skip
    next(run)  # the command line, before any work
    next(run)  # the first preview: the job is running
    session.cancel.set()
    with pytest.raises(gr.Error, match="cancelled"):
        list(run)


def test_attention_words_overlays_and_threshold(session):
    update = attention.suggest_words(session, "", "a giraffe and a cat in the style of Rembrandt")
    assert update["choices"] == ["giraffe", "cat", "style", "Rembrandt"]
    assert attention.chosen_words(["giraffe", "cat"]) == "giraffe, cat"
    image, overlays, sheet, masks, files, command, _status = finish(
        attention.attend(session, "", "a giraffe and a cat", "giraffe, cat", steps=2, size=32)
    )
    assert [word for _, word in overlays] == ["giraffe", "cat"]
    assert Image.open(image).size == (32, 32) == Image.open(overlays[0][0]).size
    assert Image.open(sheet).size[0] > 3 * 32
    assert {p.rsplit("/", 1)[1] for p in files} >= {"maps.safetensors", "maps.json"}
    assert command.startswith("brushwork attend 'a giraffe and a cat' --words giraffe cat")
    from safetensors.torch import load_file

    raw = load_file(next(p for p in files if p.endswith(".safetensors")))
    assert raw["word_maps"].shape[0] == 2
    loads = session.models.loads
    area = [np.asarray(Image.open(m)).astype(bool).sum() for m, _ in masks]
    higher = attention.rethreshold(session, 0.8)
    assert session.models.loads == loads  # no new model, no generation
    assert [w for _, w in higher] == ["giraffe > 0.8", "cat > 0.8"]
    assert all(
        np.asarray(Image.open(m)).astype(bool).sum() <= a
        for (m, _), a in zip(higher, area, strict=True)
    )


def test_attention_word_not_in_prompt(session):
    with pytest.raises(gr.Error, match="dog"):
        finish(attention.attend(session, "", "a giraffe and a cat", "giraffe, dog", steps=2))
    with pytest.raises(gr.Error, match="no words"):
        finish(attention.attend(session, "", "a giraffe", " , ", steps=2))


def test_missing_model_folder_is_one_line(session):
    with pytest.raises(gr.Error, match="diffusion pipeline folder /nowhere/sd does not exist"):
        finish(attention.attend(session, "/nowhere/sd", "a cat", "cat", steps=2))


def test_edit_keeps_the_size(session, pictures):
    image, _files, command, _status = finish(
        edit.edit(session, "", str(pictures["content"]), "a cat", "a dog", "dds", iterations=2)
    )
    assert Image.open(image).size == (48, 40)
    assert "--method dds --iterations 2" in command


def test_generate_plain_is_seeded(session):
    first, *_ = finish(generate.generate(session, "", "a cat", steps=2, size=32, seed=3))
    again, _, command, _ = finish(generate.generate(session, "", "a cat", steps=2, size=32, seed=3))
    assert np.array_equal(_pixels(first), _pixels(again))
    assert Image.open(first).size == (32, 32)
    assert command.startswith("brushwork generate 'a cat' --model ")
    with pytest.raises(gr.Error, match="type a prompt"):
        finish(generate.generate(session, "", "  "))
    with pytest.raises(gr.Error, match="multiple of 8"):
        finish(generate.generate(session, "", "a cat", size=30))


def test_generate_sgool_uses_the_given_clip_and_is_seeded(session, tmp_path):
    from ui_tiny import tiny_clip_folder

    clip = str(tiny_clip_folder(tmp_path / "tiny-clip"))
    values = dict(mode="sgool", steps=2, iterations=2, size=32, seed=1, clip_model=clip)
    first, files, command, status = finish(generate.generate(session, "", "a cat", **values))
    again, *_ = finish(generate.generate(session, "", "a cat", **values))
    assert np.array_equal(_pixels(first), _pixels(again))
    assert Image.open(first).size == (32, 32) and files == [first]
    assert f"--saliency-guided --iterations 2 --clip-model {clip}" in command
    assert status.endswith(": sgool")
    plain, *_ = finish(generate.generate(session, "", "a cat", steps=2, size=32, seed=1))
    assert not np.array_equal(_pixels(first), _pixels(plain))  # the latent was optimised


def test_generate_style_reference_needs_an_image_and_names_the_missing_adapter(
    session, pictures, monkeypatch
):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error, match="style image"):
        finish(generate.generate(session, "", "a cat", mode="style", steps=2, size=32))
    with pytest.raises(gr.Error) as error:
        finish(generate.generate(session, "", "a cat", mode="style", style=str(pictures["style"]),
                                 steps=2, size=32))  # fmt: skip
    message = str(error.value.message if hasattr(error.value, "message") else error.value)
    assert "\n" not in message.strip() and "h94/IP-Adapter" in message
    assert message.rstrip().endswith("with the IP-Adapter field")


def test_generate_style_reference_runs_a_local_adapter_file_like_the_cli(
    session, pictures, tmp_path, monkeypatch
):
    import shlex

    from ui_tiny import tiny_ip_adapter_file

    from brushwork.cli.main import main

    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")  # a local file needs no network
    adapter = str(tiny_ip_adapter_file(tmp_path / "ip"))
    values = dict(mode="style", style=str(pictures["style"]), preset="full", adapter_scale=1.0,
                  adapter=adapter, steps=2, size=32, seed=4)  # fmt: skip
    first, files, command, status = finish(generate.generate(session, "", "a cat", **values))
    again, *_ = finish(generate.generate(session, "", "a cat", **values))
    assert np.array_equal(_pixels(first), _pixels(again))
    assert Image.open(first).size == (32, 32) and files == [first] and status.endswith(": style")
    assert f"--ip-adapter-scale 1 --ip-adapter {adapter}" in command
    plain, *_ = finish(generate.generate(session, "", "a cat", steps=2, size=32, seed=4))
    assert not np.array_equal(_pixels(first), _pixels(plain))  # the style image was used
    # the equivalent command, run as printed (the upload's name pointed at its file)
    argv = shlex.split(command)[1:]
    argv[argv.index("--style") + 1] = str(pictures["style"])
    argv[argv.index("-o") + 1] = str(tmp_path / "cli.png")
    assert main([*argv, "-q"]) == 0
    assert np.abs(_pixels(tmp_path / "cli.png").astype(int) - _pixels(first)).max() <= 1


def test_evaluate_uploads_paired_by_name(session, tmp_path, pictures):
    from ui_tiny import picture

    contents = [picture(tmp_path / "c" / f"{n}.png", i) for i, n in enumerate(("a", "b"))]
    results = [picture(tmp_path / "r" / f"{n}.png", 10 + i) for i, n in enumerate(("a", "b"))]
    table, summary, files, command = evaluate.score(
        session, contents, [pictures["style"]], results, metrics=["ssim", "histogram"]
    )
    assert [row[0] for row in table["data"]] == ["a", "b"]
    assert {"ssim", "histogram"} <= set(table["headers"])
    assert [row[0] for row in summary["data"]] == ["ssim", "histogram"]
    assert all(row[1] == 2 for row in summary["data"])
    assert files[0].endswith("scores.csv") and "--metrics ssim,histogram" in command
    with pytest.raises(gr.Error, match="no content images"):
        evaluate.score(session, None, [pictures["style"]], results)


def test_study_status_and_report(session, sd_folder, tmp_path):
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.experiments.grid import TEMPLATES, build_grid
    from brushwork.experiments.runner import StudySettings, run_local
    from brushwork.experiments.store import StudyStore

    with pytest.raises(gr.Error):
        study.status(session, str(tmp_path / "no-run"))
    settings = StudySettings(
        model=str(sd_folder), steps=2, height=32, width=32, dtype="float32", rule="both"
    )
    grid = build_grid(templates=[TEMPLATES[0]], contents=["giraffe", "cat"],
                      styles=["Rembrandt", "Cubism"])  # fmt: skip
    pipe = load_pipeline(str(sd_folder), dtype="float32", device="cpu")
    with StudyStore(tmp_path / "run") as store:
        store.create_or_check(grid, settings.record("cpu"))
        run_local(store, settings, store.pending(), pipe=pipe, batch_size=4)
    text = study.status(session, str(tmp_path / "run"))
    assert "4 total, 4 done, 0 pending, 0 failed" in text
    page, pictures, files = study.report(session, str(tmp_path / "run"))
    assert "<table" in page and "data:image/png;base64," in page
    assert len(pictures) == 5 and any(f.endswith("index.html") for f in files)


def test_cancel_button_and_cache_capacity():
    from brushwork.ui.common import ModelCache, Session, request_cancel

    session = Session()
    assert request_cancel(session) == "cancelled" and session.cancel.is_set()  # none ran
    cache = ModelCache(capacity=2)
    for key in ("a", "b", "a", "c"):
        cache.get((key,), lambda key=key: torch.zeros(1))
    assert ("a",) in cache and ("c",) in cache and ("b",) not in cache and cache.loads == 3


def test_jobs_draw_their_progress_on_the_status_line(sd_folder):
    from brushwork.ui.app import build_app
    from brushwork.ui.common import UISettings

    app = build_app(UISettings(model=str(sd_folder), device="cpu"))
    config = app.get_config_file()
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
    jobs = [d for d in config["dependencies"] if d.get("show_progress") == "full"]
    names = ("transfer", "attention", "edit", "generate")
    for name in names:
        status = ids[f"{name}-status"]
        assert any(d.get("show_progress_on") == [status] for d in jobs), name
    # Tall enough for the progress bar and timer while a job runs.
    statuses = [c for c in config["components"] if c["id"] in {ids[f"{n}-status"] for n in names}]
    assert all(c["props"].get("min_height") for c in statuses)


def test_the_queue_polls_at_50_hz_not_1000(sd_folder):
    # Gradio's own 1 ms / 10 ms loops took CPU from the job (benchmarks/ui.py); if a Gradio
    # release renames these attributes, calm_queue would silently do nothing: fail here.
    from brushwork.ui.app import PROGRESS_POLL_S, QUEUE_POLL_S, build_app
    from brushwork.ui.common import UISettings

    queue = build_app(UISettings(model=str(sd_folder), device="cpu"))._queue
    assert queue.sleep_when_free == QUEUE_POLL_S == 0.02
    assert queue.progress_update_sleep_when_free == PROGRESS_POLL_S == 0.05
