"""The benchmark's parts: protocol lists, method specs, peak memory, the command line and
the comparison of two benchmark folders."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from brushwork.benchmark.measure import Measurement
from brushwork.benchmark.methods import parse_methods
from brushwork.benchmark.protocol import get_protocol, protocol_inputs
from brushwork.cli.main import main
from brushwork.errors import ConfigError, ImageError


def test_styleid_protocol_lists_20_contents_and_40_styles():
    protocol = get_protocol("styleid-20x40")
    assert [f.name for f in protocol.contents] == [f"{i:02d}.png" for i in range(20)]
    assert [f.name for f in protocol.styles] == [f"{i:02d}.png" for i in range(40)]
    for listed in (*protocol.contents, *protocol.styles):
        assert re.fullmatch(r"[0-9a-f]{64}", listed.sha256) and listed.size_bytes > 1000
        assert (listed.width, listed.height) == (512, 512)
    with pytest.raises(ConfigError, match="did you mean 'styleid-20x40'"):
        get_protocol("styleid-20x41")


def test_protocol_images_are_checked_against_their_digests(bench_data, tmp_path):
    protocol = get_protocol("styleid-20x40")
    for folder, listed in (("cnt", protocol.contents), ("sty", protocol.styles)):
        (tmp_path / folder).mkdir()
        for item in listed:  # the listed names, other bytes
            shutil.copy(bench_data["contents"] / "cat.png", tmp_path / folder / item.name)
    with pytest.raises(ImageError, match=r"cnt/00.png is not the listed file .*60 in all"):
        protocol_inputs("styleid-20x40", tmp_path)
    inputs = protocol_inputs("styleid-20x40", tmp_path, verify=False)
    assert len(inputs.contents) == 20 and len(inputs.styles) == 40
    assert inputs.protocol == "styleid-20x40" and inputs.contents[3].name == "03"
    (tmp_path / "sty" / "07.png").unlink()
    with pytest.raises(ImageError, match=r"sty/07.png is missing"):
        protocol_inputs("styleid-20x40", tmp_path, verify=False)


def test_method_specs_get_unique_labels_and_unknown_names_a_suggestion():
    specs = parse_methods("gatys, johnson:a/starry.safetensors,johnson:b/starry.safetensors,adain")
    assert [s.label for s in specs] == ["gatys", "johnson-starry", "johnson-starry_", "adain"]
    assert specs[1].text == "johnson:a/starry.safetensors" and specs[0].weights is None
    with pytest.raises(ConfigError, match="did you mean 'styleid'"):
        parse_methods("styleld")
    with pytest.raises(ConfigError, match="give the weights after ':'"):
        parse_methods("adain:")


def test_peak_memory_is_what_the_job_added():
    with Measurement("cpu") as small:
        torch.ones(1024)
    with Measurement("cpu") as large:
        block = torch.ones(32 * 2**20)  # 128 MiB, touched
        block.add_(1)
    del block
    assert large.memory_kind in ("rss-peak", "rss-max") and large.seconds > 0
    assert large.peak_bytes >= 100 * 2**20
    if large.memory_kind == "rss-peak":  # reset per job: the earlier peak is not counted
        with Measurement("cpu") as after:
            torch.ones(1024)
        assert after.peak_bytes < 50 * 2**20 and small.peak_bytes < 50 * 2**20


def test_a_job_after_a_larger_one_still_measures_what_it_needs():
    # After one 8 MiB block has been mapped and freed, glibc serves blocks of that size
    # from its heap; a block still held at the heap's top keeps the freed ones resident,
    # and without handing them back the next job would measure as needing nothing.
    warm = torch.ones(2**21)
    del warm

    def job(count: int) -> torch.Tensor:
        blocks = [torch.ones(2**21) for _ in range(count)]  # 8 MiB each, touched
        return blocks[-1]

    with Measurement("cpu") as first:
        held = job(16)
    with Measurement("cpu") as second:
        job(4)
    del held
    if second.memory_kind != "rss-peak":
        pytest.skip("no resettable resident-set peak on this platform")
    assert first.peak_bytes >= 100 * 2**20
    assert 24 * 2**20 <= second.peak_bytes <= 64 * 2**20


def _cli(bench_data, vgg, out, *extra):
    return main([
        "benchmark", "--contents", str(bench_data["contents"]), "--styles",
        str(bench_data["styles"]), "--methods", f"adain:{bench_data['adain']},wct",
        "--metrics", "ssim,gram_loss", "--vgg-weights", str(vgg), "--size", "40",
        "--device", "cpu", "-o", str(out), "-q", *extra,
    ])  # fmt: skip


def test_command_line_runs_reports_and_compares_two_folders(
    bench_data, vgg19_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("BRUSHWORK_WCT_MODEL", raising=False)
    assert _cli(bench_data, vgg19_file[0], tmp_path / "a") == 0
    assert _cli(bench_data, vgg19_file[0], tmp_path / "b", "--seed", "3") == 0
    assert (tmp_path / "a" / "report.html").is_file()
    assert len((tmp_path / "a" / "rows.csv").read_text().splitlines()) == 1 + 8  # 4 skipped
    assert (
        main(["benchmark", "report", str(tmp_path / "a"), "-o", str(tmp_path / "r.html"), "-q"])
        == 0
    )
    assert (tmp_path / "summary.json").is_file()
    code = main([
        "benchmark", "report", str(tmp_path / "a"), str(tmp_path / "b"),
        "-o", str(tmp_path / "cmp" / "c.html"), "-q",
    ])  # fmt: skip
    assert code == 1 and "does not exist; create it first" in capsys.readouterr().err
    (tmp_path / "cmp").mkdir()
    code = main([
        "benchmark", "report", str(tmp_path / "a"), str(tmp_path / "b"),
        "-o", str(tmp_path / "cmp" / "c.html"), "-q",
    ])  # fmt: skip
    assert code == 0
    records = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["comparison"]
    by_metric = {r["metric"]: r for r in records if r["method"] == "adain-tiny-adain"}
    assert set(by_metric) == {"ssim", "gram_loss", "seconds"}
    ssim = by_metric["ssim"]
    assert ssim["n"] == 4  # AdaIN draws no noise: the seed changes nothing, B − A = 0
    assert ssim["difference"] == pytest.approx(ssim["mean_b"] - ssim["mean_a"], abs=1e-12)
    assert ssim["difference"] == pytest.approx(0.0, abs=1e-9)
    assert '<table class="comparison">' in (tmp_path / "cmp" / "c.html").read_text()


def test_styleid_runs_through_its_library_call(bench_data, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))
    from tiny_sd import build_sd_pipeline

    from brushwork.benchmark.methods import MethodSettings
    from brushwork.benchmark.protocol import folder_inputs
    from brushwork.benchmark.runner import BenchmarkSettings, benchmark_folder
    from brushwork.benchmark.store import BenchmarkStore

    build_sd_pipeline(tmp_path / "build").save_pretrained(tmp_path / "sd")
    settings = BenchmarkSettings(
        methods=tuple(parse_methods(f"styleid:{tmp_path / 'sd'}")),
        method=MethodSettings(size=32, seed=0, steps=2, device="cpu"),
        metrics=("ssim",),
    )
    summary, _ = benchmark_folder(
        tmp_path / "b", settings, folder_inputs(bench_data["contents"], bench_data["styles"])
    )
    assert (summary.done, summary.failed) == (4, 0)
    with BenchmarkStore(tmp_path / "b", create=False) as store:
        (method,) = store.methods()
        jobs = store.jobs()
    assert method["defaults"]["gamma"] == 0.75 and method["defaults"]["steps"] == 2
    from brushwork.image import load_image

    result = load_image(tmp_path / "b" / jobs[0].result)
    assert tuple(result.shape) == (3, 27, 32)  # the 40×48 content at long side 32
