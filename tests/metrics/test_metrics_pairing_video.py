"""File pairing by name, and the warping error of videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork.errors import ImageError
from brushwork.metrics.pairing import list_images, pair_by_name, pair_style_triples
from brushwork.metrics.warping import read_video_frames, warping_error


def _touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")
    return sorted(folder / n for n in names)


def test_triples_pair_same_names(tmp_path):
    c = _touch(tmp_path / "c", "a.png", "b.jpg")
    s = _touch(tmp_path / "s", "a.jpg", "b.png")
    r = _touch(tmp_path / "r", "b.png", "a.png")
    triples = pair_style_triples(c, s, r)
    assert [(t.content.name, t.style.name, t.result.name) for t in triples] == [
        ("a.png", "a.jpg", "a.png"),
        ("b.jpg", "b.png", "b.png"),
    ]


def test_triples_pair_content_style_names(tmp_path):
    c = _touch(tmp_path / "c", "cat.png", "cat_big.png")
    s = _touch(tmp_path / "s", "monet.jpg", "van_gogh.jpg")
    r = _touch(tmp_path / "r", "cat_monet.png", "cat_big_van_gogh.png", "cat_van_gogh.png")
    pairs = {t.result.name: (t.content.name, t.style.name) for t in pair_style_triples(c, s, r)}
    assert pairs == {
        "cat_monet.png": ("cat.png", "monet.jpg"),
        "cat_big_van_gogh.png": ("cat_big.png", "van_gogh.jpg"),
        "cat_van_gogh.png": ("cat.png", "van_gogh.jpg"),
    }


def test_single_style_pairs_with_every_result(tmp_path):
    c = _touch(tmp_path / "c", "a.png", "b.png")
    s = _touch(tmp_path / "s", "starry.jpg")
    r = _touch(tmp_path / "r", "a.png", "b.png")
    assert {t.style.name for t in pair_style_triples(c, s, r)} == {"starry.jpg"}


def test_unpaired_files_are_named(tmp_path):
    c = _touch(tmp_path / "c", "a.png", "b.png", "c.png")
    s = _touch(tmp_path / "s", "a.png", "b.png", "c.png")
    r = _touch(tmp_path / "r", "a.png", "zebra.png")
    with pytest.raises(ImageError) as info:
        pair_style_triples(c, s, r)
    message = str(info.value)
    assert "zebra.png" in message and "b.png, c.png" in message and "have no result" in message


def test_edit_pairs_and_missing(tmp_path):
    inputs = _touch(tmp_path / "in", "x.png", "y.png")
    results = _touch(tmp_path / "out", "x.png", "y.webp")
    assert [(p.reference.name, p.result.name) for p in pair_by_name(inputs, results)] == [
        ("x.png", "x.png"),
        ("y.png", "y.webp"),
    ]
    with pytest.raises(ImageError, match=r"have no result: y\.png"):
        pair_by_name(inputs, results[:1])


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(ImageError, match="holds no images"):
        list_images(tmp_path / "empty", what="results")
    with pytest.raises(ImageError, match="does not exist"):
        list_images(tmp_path / "missing", what="content")


def test_duplicate_stems_are_refused(tmp_path):
    files = _touch(tmp_path / "c", "a.png", "a.jpg")
    with pytest.raises(ImageError, match="two files named 'a'"):
        pair_style_triples(files, files, files[:1])


# --------------------------------------------------------------------------- warping error


def test_static_video_has_zero_warping_error(make_video):
    frames = make_video(4, (0, 0))
    result = warping_error(frames, frames)
    assert result.mean == pytest.approx(0.0, abs=1e-12) and len(result.per_pair) == 3


def test_translation_with_known_flow_has_zero_error(make_video):
    dx, dy = 2, 1
    frames = make_video(4, (dx, dy))
    stylised = 1 - frames  # any per-pixel stylisation moves with the content
    # frame t-1 at p shows what frame t shows at p - (dx, dy)
    forward = -torch.stack([torch.full((48, 48), float(dx)), torch.full((48, 48), float(dy))])
    flows = [(forward, -forward)] * 3
    result = warping_error(frames, stylised, flows=flows)
    assert result.mean == pytest.approx(0.0, abs=1e-10)
    # A wrong flow is measured as flicker.
    wrong = [(torch.zeros_like(forward), torch.zeros_like(forward))] * 3
    assert warping_error(frames, stylised, flows=wrong).mean > 1e-3


def test_estimated_flow_explains_translation(make_video):
    frames = make_video(3, (2, 1))
    stylised = 1 - frames
    moved = warping_error(frames, stylised).mean
    flicker = stylised.clone()
    flicker[1] = (flicker[1] + 0.2).clamp(0, 1)
    assert moved < 1e-3
    assert warping_error(frames, flicker).mean > 10 * max(moved, 1e-5)


def test_warping_error_agrees_with_flow_module(make_video):
    from brushwork.flow import warping_error as flow_warping_error

    frames = make_video(3, (1, 0))
    stylised = frames + 0.1 * torch.rand(frames.shape, generator=torch.Generator().manual_seed(0))
    ours = warping_error(frames, stylised).mean
    assert ours == pytest.approx(flow_warping_error(frames, stylised), rel=1e-5)


def test_warping_error_bad_input(make_video):
    frames = make_video(3, (0, 0))
    with pytest.raises(ImageError, match="3 frames but the result has 2"):
        warping_error(frames, frames[:2])
    with pytest.raises(ImageError, match="at least 2 frames"):
        warping_error(frames[:1], frames[:1])


def test_read_video_frames(tmp_path, make_video):
    import av
    import numpy as np

    frames = make_video(3, (1, 0), size=32)
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in frames:
            array = (frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    decoded = read_video_frames(path)
    assert decoded.shape == (3, 3, 32, 32)
    with pytest.raises(ImageError, match="does not exist"):
        read_video_frames(tmp_path / "none.mp4")
