"""The multi-pass mode of Gatys video (Ruder et al. 2016, §3.3) and the video CLI paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from video_synth import moving_square_frames, texture, to_tensor

from brushwork.cli.main import main
from brushwork.errors import ConfigError
from brushwork.transfer.gatys import GatysSettings
from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
from brushwork.transfer.modelfile import save_model
from brushwork.video import GatysVideo, GatysVideoSettings, iter_frames, probe_video, render_video
from brushwork.video.render import work_folder


def _settings(**kwargs) -> GatysVideoSettings:
    image = GatysSettings(size=None, steps=3, pyramid="off", precision="fp32", style_weight=1e4)
    return GatysVideoSettings(image=image, later_steps=2, **kwargs)


def test_refine_starts_from_the_certain_blend_of_the_neighbour_behind(style_image, vgg19):
    frames = [to_tensor(f) for f in moving_square_frames(count=3, step=(3, 1))]
    outs = [torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    method = GatysVideo(
        style_image, settings=_settings(passes=2, pass_steps=0), encoder=vgg19, device="cpu"
    )
    behind, ahead = (frames[0], outs[0]), (frames[2], outs[2])
    refined = method.refine(frames[1], outs[1], [behind, ahead])
    warped, certain = method._warped_neighbour(frames[1], *behind)
    assert 0.5 < float(certain.mean()) < 1.0  # the square's trail is uncertain
    expected = 0.5 * certain * warped + (1 - 0.5 * certain) * outs[1]
    assert torch.allclose(refined, expected, atol=1e-6)
    # The first frame of a sweep has nobody behind it: it starts from its own result.
    assert torch.allclose(method.refine(frames[1], outs[1], [None, ahead]), outs[1])


def test_refine_pulls_towards_both_neighbours(style_image, vgg19) -> None:
    frames = [to_tensor(f) for f in moving_square_frames(count=3, step=(2, 0))]
    outs = [torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    pairs = [(frames[0], outs[0]), (frames[2], outs[2])]

    def refined(weight: float) -> torch.Tensor:
        settings = _settings(passes=2, pass_steps=10, pass_blend=0.0, temporal_weight=weight)
        return GatysVideo(style_image, settings=settings, encoder=vgg19).refine(
            frames[1], outs[1], pairs
        )

    method = GatysVideo(style_image, settings=_settings(), encoder=vgg19)
    targets = [method._warped_neighbour(frames[1], *pair) for pair in pairs]
    mean_target = sum(t * c for t, c in targets) / sum(c for _, c in targets).clamp_min(1e-6)
    inner = (slice(None), slice(10, 38), slice(40, 60))
    strong, none = refined(1e5), refined(0.0)
    distance = [float((x - mean_target)[inner].abs().mean()) for x in (strong, none)]
    assert distance[0] < 0.5 * distance[1]


def test_pass_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--passes"):
        _settings(passes=0).validate()
    with pytest.raises(ConfigError, match="--pass-blend"):
        _settings(pass_blend=1.5).validate()
    with pytest.raises(ConfigError, match="--pass-steps"):
        _settings(passes=2, pass_steps=-1).validate()
    assert "passes" not in GatysVideo.describe(_Described(_settings()))
    assert GatysVideo.describe(_Described(_settings(passes=3)))["pass_steps"] == 2


class _Described:
    def __init__(self, settings: GatysVideoSettings) -> None:
        self.settings = settings


class _Crash(RuntimeError):
    pass


class _CrashAfterRefining:
    """GatysVideo that raises after ``count`` refined frames (a crash mid-pass)."""

    def __init__(self, method: GatysVideo, count: int) -> None:
        self.method, self.count = method, count
        self.history, self.passes = method.history, method.passes

    def describe(self) -> dict[str, object]:
        return self.method.describe()

    def stylise(self, frame, previous):
        return self.method.stylise(frame, previous)

    def refine(self, frame, current, neighbours):
        if self.count == 0:
            raise _Crash
        self.count -= 1
        return self.method.refine(frame, current, neighbours)


def test_multipass_render_resumes_mid_pass_to_the_same_frames(
    tmp_path: Path, moving_square_video: Path, style_image, vgg19
) -> None:
    settings = _settings(passes=3, pass_steps=1)
    method = GatysVideo(style_image, settings=settings, encoder=vgg19, device="cpu")
    seen: list[tuple[int, int]] = []
    whole = render_video(
        moving_square_video,
        tmp_path / "whole",
        method,
        size=24,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (24, 24) and whole.frames == 8
    out = tmp_path / "resumed"
    with pytest.raises(_Crash):
        render_video(moving_square_video, out, _CrashAfterRefining(method, 11), size=24)
    folder = work_folder(out)
    assert len(list((folder / "pass_2").glob("frame_*.png"))) == 8
    assert len(list((folder / "pass_3").glob("frame_*.png"))) == 3
    assert (folder / "pass_3" / "frame_000001.png").is_file()  # pass 3 sweeps forward
    first, second = (Image.open(f / "frame_000004.png") for f in (folder, folder / "pass_2"))
    assert first.tobytes() != second.tobytes()  # the refining pass changed the frame
    single = GatysVideo(style_image, settings=_settings(passes=2), encoder=vgg19, device="cpu")
    with pytest.raises(ConfigError, match="other settings"):
        render_video(moving_square_video, out, single, size=24, resume=True)
    resumed = render_video(moving_square_video, out, method, size=24, resume=True)
    assert resumed.resumed_from == 8 + 8 + 3 and not folder.exists()
    a, b = list(iter_frames(whole.output)), list(iter_frames(resumed.output))
    assert len(a) == len(b) == 8
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_cli_multipass_and_feedforward_video(
    tmp_path: Path, moving_square_video: Path, vgg19_file, capsys
) -> None:
    style = tmp_path / "style.png"
    Image.fromarray(texture(32, 32, seed=5)).save(style)
    out = tmp_path / "passes.mp4"
    argv = [
        "video", str(moving_square_video), "--style", str(style), "-o", str(out),
        "--weights", str(vgg19_file[0]), "--size", "24", "--steps", "2", "--later-steps", "1",
        "--passes", "2", "--pass-steps", "1", "--device", "cpu", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    assert probe_video(out).frame_count == 8
    assert "warping error:" in capsys.readouterr().out
    argv[argv.index("--passes") + 1] = "0"
    argv[argv.index("-o") + 1] = str(tmp_path / "x.mp4")
    with pytest.raises(SystemExit) as exit_info:  # a count: 0 is a usage error
        main(argv)
    assert exit_info.value.code == 2
    assert "--passes" in capsys.readouterr().err

    torch.manual_seed(0)
    model = save_model(tmp_path / "tiny.safetensors", TransformerNet(JohnsonConfig(4, 1)))
    ff = tmp_path / "ff.mp4"
    argv = ["video", str(moving_square_video), "--model", str(model), "-o", str(ff), "--quiet"]
    assert main([*argv, "--stable", "0.8", "--device", "cpu"]) == 0
    info = probe_video(ff)
    assert info.frame_count == 8 and (info.width, info.height) == (64, 48)
    assert float(capsys.readouterr().out.split("warping error:")[1]) >= 0.0
