"""`brushwork regions` and `transfer --region` end to end: tiny SD pipeline, random VGG."""

from __future__ import annotations

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import load_image, load_mask

CAPTION = "a cat and a dog"


def test_regions_writes_masks_that_sum_to_one_and_a_sheet(sd_folder, pictures, tmp_path, capsys):
    out = tmp_path / "masks"
    argv = ["regions", str(pictures["photo"]), "--caption", CAPTION, "--words", "cat", "dog",
            "--model", str(sd_folder), "--size", "32", "--device", "cpu",
            "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    masks = [load_mask(out / f"mask_{n}.png") for n in ("cat", "dog", "rest")]
    assert all(m.shape == (1, 32, 48) for m in masks)
    torch.testing.assert_close(sum(masks), torch.ones(1, 32, 48), atol=2 / 255, rtol=0)
    assert load_image(out / "overlay.png").shape == (3, 32, 48)
    assert load_image(out / "sheet.png").shape[-1] == 5 * 48 + 4 * 4


def test_transfer_with_regions_from_the_caption(sd_folder, pictures, vgg19_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    argv = ["transfer", str(pictures["photo"]), "--caption", CAPTION,
            "--region", f"cat={pictures['red']}", "--region", f"dog={pictures['blue']}",
            "--maps-model", str(sd_folder), "--size", "32", "--steps", "2",
            "--weights", str(vgg19_file[0]), "--device", "cpu",
            "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert load_image(out).shape == (3, 21, 32)  # --size 32: the long side


def test_edited_mask_and_rest_photo_need_no_maps_model(pictures, vgg19_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    argv = ["transfer", str(pictures["photo"]), "--region", f"cat={pictures['red']}",
            "--region", "rest=photo", "--mask", f"cat={pictures['left']}",
            "--maps-model", str(tmp_path / "no-such-model"), "--size", "48", "--steps", "3",
            "--region-feather", "0", "--weights", str(vgg19_file[0]), "--device", "cpu",
            "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    result, photo = load_image(out), load_image(pictures["photo"])
    torch.testing.assert_close(result[:, :, 26:], photo[:, :, 26:], atol=1.5 / 255, rtol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "horse={red}"], "'horse' is not in the caption"),
        (["--region", "cat={red}", "--region", "cat,dog={blue}"], "overlapping regions: 'cat'"),
        (["--region", "cat={notes}"], "notes.png"),
        (["--region", "cat={red}", "--style", "{blue}"], "instead of --style"),
        (["--region", "cat"], "not WORDS=FILE"),
        (["--region", "cat={red}", "--mask", "dog={left}"], "names no --region word"),
    ],
)
def test_bad_region_specs_are_one_line_before_any_model(extra, message, pictures, tmp_path, capsys):
    names = {k: str(v) for k, v in pictures.items()}
    argv = ["transfer", str(pictures["photo"]), "--caption", CAPTION,
            *[e.format(**names) for e in extra], "--maps-model", str(tmp_path / "none"),
            "--weights", str(tmp_path / "none.pth"),
            "-o", str(tmp_path / "o.png"), "-q"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o.png").exists()
