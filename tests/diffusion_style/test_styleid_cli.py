"""``brushwork stylize --method styleid`` end to end on a tiny pipeline saved to disk."""

from __future__ import annotations

import pytest
import torch
from styleid_tiny import build_pipeline, smooth_image, unet_without_decoder_attention


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from brushwork.image import save_image

    folder = tmp_path_factory.mktemp("styleid_cli")
    build_pipeline("sd", folder / "build").save_pretrained(folder / "sd")
    save_image(smooth_image(0, 48)[:, :, :40], folder / "photo.png")  # 40×48: fitted, resized back
    save_image(smooth_image(1, 24), folder / "starry.png")
    (folder / "notes.png").write_text("not an image")
    return folder


def _args(folder, out, *extra):
    return ["stylize", str(folder / "photo.png"), "--method", "styleid",
            "--style", str(folder / "starry.png"), "--model", str(folder / "sd"),
            "--steps", "2", "--device", "cpu", "-o", str(out), *extra]  # fmt: skip


def test_end_to_end_same_seed_same_image(saved, tmp_path, capsys):
    from brushwork.cli.main import main
    from brushwork.image import load_image

    out = tmp_path / "out.png"
    assert main(_args(saved, out)) == 0
    err = capsys.readouterr().err
    assert "saved" in err and "stylised at 28×32, resized to 40×48" in err
    assert "inversion" in err  # progress over both phases (plain lines off a terminal)
    image = load_image(out)
    assert image.shape == (3, 48, 40)
    assert main([*_args(saved, tmp_path / "again.png"), "-q", "--seed", "3"]) == 0
    assert torch.equal(load_image(tmp_path / "again.png"), image)  # deterministic
    assert main([*_args(saved, tmp_path / "g.png"), "-q", "--gamma", "0.2"]) == 0
    assert not torch.equal(load_image(tmp_path / "g.png"), image)
    assert list(tmp_path.glob("*.tmp*")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--style", "{notes}"), "notes.png"),
        (("--prompt", "a cat"), "--prompt is not used by --method styleid"),
        (("--injection-steps", "5"), "more than the 2 --steps"),
        (("--gamma", "1.5"), "between 0 and 1"),
        (("--temperature", "0"), "more than 0"),
    ],
)
def test_clear_errors_before_the_model_loads(saved, tmp_path, capsys, change, message):
    from brushwork.cli.main import main

    flag, value = change
    args = _args(saved, tmp_path / "out.png")
    value = value.replace("{notes}", str(saved / "notes.png"))
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    code = main(args) if flag not in ("--gamma", "--temperature") else None
    if code is None:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        code = exit_info.value.code
    assert code not in (0, None)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_a_model_without_decoder_attention_is_refused(saved, tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    from brushwork.cli.main import main

    unet = unet_without_decoder_attention()
    pipe = StableDiffusionPipeline.from_pretrained(saved / "sd", unet=unet)
    pipe.save_pretrained(tmp_path / "plain")
    args = _args(saved, tmp_path / "out.png")
    args[args.index("--model") + 1] = str(tmp_path / "plain")
    assert main(args) == 1
    assert "no self-attention layers in its decoder" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
