"""`brushwork edit` / `generate` options: the input's size kept, counts, sizes, devices,
deprecated spellings; every refusal is one line, exit != 0, nothing written."""

from __future__ import annotations

import os

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import load_image, save_image
from cli_testing import error_line


@pytest.fixture(scope="module")
def sd_dir(sd_edit_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd_model_options")
    sd_edit_pipe.save_pretrained(folder)
    return folder


@pytest.fixture()
def odd_photo(tmp_path):
    path = tmp_path / "odd.png"
    save_image(torch.rand(3, 45, 70, generator=torch.Generator().manual_seed(1)), path)
    return path


def _edit(photo, out, *extra):
    return ["edit", str(photo), "--source", "a cat", "--target", "a dog", "-o", str(out),
            "--iterations", "1", "--patches", "8", "-q", *extra]  # fmt: skip


def test_edit_keeps_the_input_size_and_old_lr_still_works(sd_dir, odd_photo, tmp_path):
    out = tmp_path / "edited.png"
    assert main(_edit(odd_photo, out, "--model", str(sd_dir), "--lr", "0.05")) == 0
    assert load_image(out).shape == (3, 45, 70)  # 70x45 in, 70x45 out


def test_evaluate_pairs_edit_with_its_input(sd_dir, odd_photo, tmp_path):
    out = tmp_path / "edited.png"
    assert main(_edit(odd_photo, out, "--model", str(sd_dir))) == 0
    assert load_image(out).shape[-2:] == load_image(odd_photo).shape[-2:]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--size", "0"], "argument --size: sizes must be 1 pixel or more"),
        (["--size", "4"], "must be 8 px or more"),
        (["--iterations", "0"], "must be 1 or more"),
        (["--patches", "0"], "must be 1 or more"),
        (["--device", "gpu"], "unknown device"),
    ],
)
def test_edit_counts_and_sizes_are_argparse_errors(odd_photo, tmp_path, capsys, extra, needle):
    with pytest.raises(SystemExit) as exc:
        main(_edit(odd_photo, tmp_path / "x.png", *extra))
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_generate_steps_zero_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "a cat", "--steps", "0", "-o", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert "--steps: must be 1 or more" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (["--size", "50"], "--size 50 is not a multiple of 8 (the VAE's factor); use 48 or 56"),
        (
            ["--size", "50x64"],
            "--size 50x64: the height 50 is not a multiple of 8 (the VAE's factor); "
            "use 48x64 or 56x64",
        ),
        (["--height", "50"], "--height 50 is not a multiple of 8 (the VAE's factor); use 48 or 56"),
    ],
)
def test_generate_sizes_refused_before_loading(tmp_path, capsys, size, message):
    out = tmp_path / "x.png"
    # the model does not exist: the size is refused before anything would load it
    code = main(["generate", "a cat", *size, "--model", "nobody/no-such-model", "-o", str(out)])
    assert code == 1
    assert error_line(capsys.readouterr().err) == f"error: {message}"
    assert not out.exists()


def test_model_rules_read_from_the_folder_and_the_unet_minimum(sd_dir):
    from brushwork.diffusion.sizes import check_sides, model_facts
    from brushwork.errors import ConfigError

    facts = model_facts(str(sd_dir))
    assert (facts.vae_factor, facts.minimum, facts.default_side) == (2, 4, 32)
    assert model_facts("nobody/no-such-model") is None
    with pytest.raises(ConfigError, match="--size 32 is too small: sides must be at least 64 px"):
        check_sides(32, 32, minimum=64, why="what this model's VAE and UNet need")


def test_generate_memory_estimate_refuses_huge_sizes(sd_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    args = ["generate", "a cat", "--size", "4096", "--model", str(sd_dir), "--device", "cpu",
            "--memory-limit", "1", "-o", str(out)]  # fmt: skip
    assert main(args) == 1
    line = error_line(capsys.readouterr().err)
    assert "generating at 4096x4096 needs about" in line and "--memory-limit" in line
    assert not out.exists()


def test_cuda_1_is_accepted_and_refused_in_one_line_without_cuda(sd_dir, tmp_path, capsys):
    from brushwork.cli.main import build_parser

    args = build_parser().parse_args(["generate", "a cat", "--device", "cuda:1", "-o", "x.png"])
    assert args.device == "cuda:1"
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    out = tmp_path / "x.png"
    code = main(["generate", "a cat", "--device", "cuda:1", "--model", str(sd_dir), "-o", str(out)])
    assert code == 1
    assert "no CUDA GPU" in error_line(capsys.readouterr().err)
    assert not out.exists()


def test_generate_deprecated_spellings_warn_and_work(sd_dir, tmp_path, capsys):
    out = tmp_path / "plain.png"
    args = ["generate", "a cat", "--steps", "1", "--model", str(sd_dir), "--height", "32",
            "--width", "24", "--dtype", "float32", "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    for old in ("--height", "--width", "--dtype"):
        assert f"warning: {old} is deprecated" in err
    assert load_image(out).shape == (3, 32, 24)


def test_generate_renamed_sgool_and_style_flags_parse_with_warnings(capsys):
    from brushwork.cli.main import build_parser

    args = build_parser().parse_args(
        [
            "generate",
            "a cat",
            "--optimiser",
            "sgd",
            "--style-image",
            "s.png",
            "--style-scale",
            "0.5",
            "--lr",
            "0.2",
            "-o",
            "x.png",
        ]
    )
    assert (args.optimizer, args.style, args.ip_adapter_scale) == ("sgd", ["s.png"], 0.5)
    assert args.learning_rate == 0.2
    err = capsys.readouterr().err
    for old, new in (("--optimiser", "--optimizer"), ("--style-image", "--style"),
                     ("--style-scale", "--ip-adapter-scale")):  # fmt: skip
        assert (
            f"warning: {old} is deprecated and will be removed in the next release; use {new}"
            in err
        )


def test_generate_unreadable_output_folder(sd_dir, tmp_path, capsys):
    folder = "/sys" if os.geteuid() == 0 else str(tmp_path / "ro")
    if folder != "/sys":
        os.mkdir(folder, 0o500)
    code = main(["generate", "a cat", "--model", str(sd_dir), "-o", f"{folder}/x.png", "-q"])
    assert code == 1
    error_line(capsys.readouterr().err)


def test_pipeline_value_errors_become_one_line_config_errors():
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.errors import ConfigError

    with pytest.raises(ConfigError, match="refused the settings: bad height"), user_errors():
        raise ValueError("bad height\nmore detail")
