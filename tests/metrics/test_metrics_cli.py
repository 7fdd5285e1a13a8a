"""``brushwork evaluate`` end to end on small images with tiny random networks."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import save_image


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No downloads, no user cache: every network comes from the test's files."""
    for var in list(os.environ):
        if var.startswith("BRUSHWORK_"):
            monkeypatch.delenv(var)
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


@pytest.fixture
def weight_args(
    alexnet_file,
    lpips_alex_file,
    vgg19_file,
    fid_inception_file,
    art_inception_file,
    clip_folder,
    dino_folder,
):
    return [
        "--lpips-weights", str(lpips_alex_file),
        "--lpips-trunk-weights", str(alexnet_file),
        "--vgg-weights", str(vgg19_file[0]),
        "--inception-weights", str(fid_inception_file),
        "--art-inception-weights", str(art_inception_file),
        "--inception-size", "75",
        "--clip-model", str(clip_folder),
        "--dino-model", str(dino_folder),
        "--device", "cpu", "-q",
    ]  # fmt: skip


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_style_folders_all_metrics(style_sets, weight_args, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code = main(
        ["evaluate", "--content", str(style_sets["content"]), "--style", str(style_sets["style"]),
         "--results", str(style_sets["results"]), "-o", str(out), "--json", *weight_args]
    )  # fmt: skip
    assert code == 0
    rows = _read_csv(out)
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    for r in rows:
        stem = r["name"]
        assert os.path.basename(r["content"]) == f"{stem}.png"
        assert os.path.basename(r["style"]) == f"{stem}.png"
        assert os.path.basename(r["result"]) == f"{stem}.png"
        for m in ("ssim", "lpips", "content_loss", "gram_loss", "clip_style", "leakage",
                  "histogram"):  # fmt: skip
            assert float(r[m]) == float(r[m])  # a number, not NaN
        assert 0 < float(r["ssim"]) < 1 and float(r["lpips"]) > 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ssim"]["n"] == 3
    assert summary["ssim"]["mean"] == pytest.approx(sum(float(r["ssim"]) for r in rows) / 3)
    assert summary["fid"]["value"] > 0
    lpips_mean = summary["lpips"]["mean"]
    fid_art = summary["artfid"]["fid_art_inception"]
    assert summary["artfid"]["value"] == pytest.approx((1 + lpips_mean) * (1 + fid_art))


def test_single_triple_prints_table(style_sets, weight_args, capsys):
    code = main(
        ["evaluate", "--content", str(style_sets["content"] / "a.png"),
         "--style", str(style_sets["style"] / "b.png"),
         "--results", str(style_sets["results"] / "a.png"),
         "--metrics", "ssim,histogram,lpips", *weight_args]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "ssim" in text and "histogram" in text and "95% CI" in text


def test_different_size_is_resized_other_aspect_refused(style_sets, tmp_path, capsys):
    from brushwork.image import load_image, resize_to

    results = tmp_path / "res"
    results.mkdir()
    save_image(resize_to(load_image(style_sets["content"] / "a.png"), 40, 48), results / "a.png")
    args = ["evaluate", "--content", str(style_sets["content"] / "a.png"),
            "--style", str(style_sets["style"] / "a.png"), "--results", str(results / "a.png"),
            "--metrics", "ssim", "--json", "-q"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["ssim"]["mean"] > 0.8
    save_image(torch.rand(3, 80, 80), results / "a.png")
    assert main(args) == 1
    assert "aspect ratios differ" in capsys.readouterr().err


def test_too_few_images_for_fid(style_sets, weight_args, capsys):
    code = main(
        ["evaluate", "--content", str(style_sets["content"] / "a.png"),
         "--style", str(style_sets["style"] / "a.png"),
         "--results", str(style_sets["results"] / "a.png"), "--metrics", "ssim,fid", *weight_args]
    )  # fmt: skip
    assert code == 1
    assert "at least 2" in capsys.readouterr().err


def test_missing_weights_name_the_file_and_suggest_metrics(style_sets, capsys):
    code = main(
        ["evaluate", "--content", str(style_sets["content"]), "--style", str(style_sets["style"]),
         "--results", str(style_sets["results"]), "--metrics", "ssim,lpips", "-q"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "alexnet-owt-7be5be79.pth" in err and "--metrics ssim" in err


def test_unpaired_and_empty_folders(style_sets, tmp_path, capsys):
    (style_sets["results"] / "b.png").unlink()
    args = ["evaluate", "--content", str(style_sets["content"]), "--style",
            str(style_sets["style"]), "--metrics", "ssim", "-q", "--results"]  # fmt: skip
    assert main([*args, str(style_sets["results"])]) == 1
    assert "have no result: b.png" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*args, str(empty)]) == 1
    assert "holds no images" in capsys.readouterr().err


def test_compare_two_result_sets(style_sets, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    from brushwork.image import load_image

    for stem in "abc":
        image = load_image(style_sets["results"] / f"{stem}.png")
        save_image((image * 0.5).clamp(0, 1), other / f"{stem}.png")
    out = tmp_path / "cmp.json"
    code = main(
        ["evaluate", "--content", str(style_sets["content"]), "--style", str(style_sets["style"]),
         "--compare", str(style_sets["results"]), str(other), "--metrics", "ssim,histogram",
         "-o", str(out), "--json", "-q"]
    )  # fmt: skip
    assert code == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["ssim"]["n"] == 3
    assert comparison["ssim"]["mean_b"] < comparison["ssim"]["mean_a"]
    saved = json.loads(out.read_text())
    assert [r["set"] for r in saved["items"]] == ["A"] * 3 + ["B"] * 3


def test_edit_mode(
    tmp_path, make_image, clip_folder, dino_folder, alexnet_file, lpips_alex_file, capsys
):
    save_image(make_image(1), tmp_path / "cat.png")
    save_image(make_image(2), tmp_path / "pig.png")
    out = tmp_path / "edit.csv"
    code = main(
        ["evaluate", "--edit", "--input", str(tmp_path / "cat.png"),
         "--result", str(tmp_path / "pig.png"), "--target", "a pig", "--source", "a cat",
         "--clip-model", str(clip_folder), "--dino-model", str(dino_folder),
         "--lpips-weights", str(lpips_alex_file), "--lpips-trunk-weights", str(alexnet_file),
         "-o", str(out), "-q"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (row,) = _read_csv(out)
    assert set(row) >= {"clip_text", "clip_direction", "clip_accuracy", "structure", "lpips"}
    assert float(row["structure"]) > 0 and float(row["clip_accuracy"]) in (0.0, 1.0)


def test_video_mode(tmp_path, make_video, capsys):
    import av
    import numpy as np

    def write(path, frames):
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=5)
            stream.width, stream.height, stream.pix_fmt = 48, 48, "yuv420p"
            for frame in frames:
                array = (frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            container.mux(stream.encode())

    frames = make_video(4, (0, 0))
    write(tmp_path / "in.mp4", frames)
    write(tmp_path / "out.mp4", frames)
    assert main(["evaluate", "--video", str(tmp_path / "in.mp4"), "--result",
                 str(tmp_path / "out.mp4"), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["warping_error"]["n"] == 3
    assert summary["warping_error"]["mean"] < 1e-4
