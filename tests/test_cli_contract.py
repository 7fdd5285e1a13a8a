"""The command line as one tool: shared flags, bad inputs, file modes, the README's first run.

Table-driven over every subcommand:

* the shared flags exist with the same names, values and defaults wherever they appear;
* each bad input a user can give (missing, not an image, a folder, a huge size, zero and
  negative counts, a bad device, a read-only output, a wrong mask) exits non-zero with
  one ``error:`` line, no traceback, and leaves no output or work folder;
* files are written with mode 0644 under umask 022;
* the README's first command, run in a temporary folder, writes a real image.

``python -m pytest tests/test_cli_contract.py -s -k table`` prints the table of
(command, bad input, exit code, message).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork.cli import options
from brushwork.cli.main import SUBCOMMANDS, build_parser, main
from brushwork.image import save_image
from cli_testing import read_only_folder
from weights_testing import isolate_weights_env

sys.path[:0] = [str(Path(__file__).parent / "diffusion"), str(Path(__file__).parent / "video")]
from tiny_sd import build_sd_pipeline  # noqa: E402
from video_synth import moving_square_frames, write_video  # noqa: E402

README = Path(__file__).parents[1] / "README.md"


# --------------------------------------------------------------------------- parsers


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _does_work_itself(parser: argparse.ArgumentParser) -> bool:
    """A parser whose nested actions are optional (``benchmark`` and ``benchmark report``)."""
    return any(
        isinstance(action, argparse._SubParsersAction) and not action.required
        for action in parser._actions
    )


def all_commands() -> dict[str, argparse.ArgumentParser]:
    """``"study run"`` -> its parser, for every (nested) subcommand that does work."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        children = _subparsers(parser)
        if not children or (prefix and _does_work_itself(parser)):
            found[prefix] = parser
        for name, child in children.items():
            walk(f"{prefix} {name}".strip(), child)

    walk("", build_parser(None))
    return found


COMMANDS = all_commands()


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    """The visible action of ``flag`` (deprecated spellings are hidden and skipped)."""
    return next(
        (
            a
            for a in parser._actions
            if flag in a.option_strings and a.help is not argparse.SUPPRESS
        ),
        None,
    )


def _reference() -> dict[str, argparse.Action]:
    """The shared flags as options.py defines them."""
    parser = argparse.ArgumentParser()
    options.add_quiet(parser)
    options.add_device(parser)
    options.add_precision(parser)
    options.add_seed(parser)
    options.add_memory_limit(parser)
    options.add_weights(parser)
    options.add_styles(parser)
    options.add_preserve_color(parser)
    options.add_rule(parser)
    options.add_output(parser)
    return {
        flag: action
        for action in parser._actions
        for flag in action.option_strings
        if action.help is not argparse.SUPPRESS
    }


REFERENCE = _reference()
#: Flags whose default may differ by command (documented in each --help).
DEFAULT_MAY_DIFFER = {"--seed", "--output", "-o", "--precision"}
#: (command, flag) whose value is deliberately of another form, documented in docs/cli.md:
#: evaluate's --style names ONE file or folder of the reference set, paired by name.
OTHER_FORM = {("evaluate", "--style")}
SIZED_COMMANDS = ["demo", "transfer", "stylize", "video", "attend", "edit", "generate", "study run",
                  "lora train"]  # fmt: skip
#: Commands that do work and must offer these flags.
MUST_HAVE = {
    "-q": [c for c in COMMANDS
           if c not in ("weights list", "weights path", "study status", "lora info")],
    "--device": [
        "demo", "transfer", "stylize", "video", "train johnson", "train adain", "train wct",
        "attend", "edit", "generate", "study run", "evaluate", "lora train", "benchmark",
    ],
    "--precision": SIZED_COMMANDS,
    "--memory-limit": SIZED_COMMANDS,
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_shared_flags_have_one_spelling_values_and_default(command):
    parser = COMMANDS[command]
    for flag, reference in REFERENCE.items():
        action = _action(parser, flag)
        if action is None or (command, flag) in OTHER_FORM:
            continue
        assert action.option_strings == reference.option_strings, (command, flag)
        assert action.type is reference.type or (
            getattr(action.type, "__name__", None) == getattr(reference.type, "__name__", 0)
        ), (command, flag, action.type)
        assert action.choices == reference.choices, (command, flag)
        assert action.nargs == reference.nargs, (command, flag)
        if flag not in DEFAULT_MAY_DIFFER:
            assert action.default == reference.default, (command, flag, action.default)
    for flag, commands in MUST_HAVE.items():
        if command in commands:
            assert _action(parser, flag) is not None, f"`brushwork {command}` lacks {flag}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_counts_and_sizes_use_the_shared_types(command):
    parser = COMMANDS[command]
    for action in parser._actions:
        names = set(action.option_strings)
        if names & {"--steps", "--iterations", "--batch-size", "--epochs", "--frames"}:
            assert getattr(action.type, "__name__", "").startswith("count"), (command, names)
        if "--size" in names:  # N (long side) everywhere; HxW where the command generates
            assert action.type("512") in (512, (512, None)), command
            for bad in ("0", "-3", "big"):
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type(bad)
        if "--precision" in names:
            assert action.type is options.precision_name
        if "--device" in names:
            assert action.type is options.device_name


def test_help_shows_defaults_everywhere(capsys):
    for command in ("transfer", "stylize", "attend", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "(default:" in text, command


@pytest.mark.parametrize(
    ("alias", "value", "canonical"),
    [("fp16", "fp16", "fp16"), ("half", "half", "fp16"), ("bfloat16", "bfloat16", "bf16"),
     ("float32", "float32", "fp32"), ("FP32", "FP32", "fp32")],
)  # fmt: skip
def test_precision_aliases(alias, value, canonical):
    args = build_parser("transfer").parse_args(
        ["transfer", "c.png", "--style", "s.png", "-o", "o.png", "--precision", value]
    )
    assert args.precision == canonical


# --------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def world(tmp_path_factory, vgg19_file) -> dict[str, Path]:
    """Inputs every case may use: images, a not-image, a folder, models, a video."""
    root = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((3, 40, 48), dtype=np.float32))
    files = {
        "content": save_image(image, root / "content.png"),
        "style": save_image(image.flip(-1), root / "style.png"),
        "mask": save_image(torch.ones(1, 40, 48), root / "mask.png"),
        "mask_wide": save_image(torch.ones(1, 20, 90), root / "mask_wide.png"),
        "vgg": vgg19_file[0],
        "folder": root / "a_folder",
        "not_image": root / "notes.png",
        "missing": root / "missing.png",
        "pipeline": root / "tiny-sd",
    }
    files["folder"].mkdir()
    save_image(image, files["folder"] / "one.png")
    files["not_image"].write_text("this is not a picture\n")
    build_sd_pipeline(root / "build").save_pretrained(files["pipeline"])
    from brushwork.transfer.johnson import JohnsonConfig, JohnsonNet
    from brushwork.transfer.modelfile import save_model

    torch.manual_seed(0)
    files["johnson"] = save_model(root / "tiny.safetensors", JohnsonNet(JohnsonConfig(8, 1)))
    files["video"] = write_video(root / "clip.mp4", moving_square_frames(count=3))
    return files


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@dataclass
class Case:
    """A command line with one bad input: ``{name}`` placeholders name world files."""

    command: str
    bad: str
    argv: str


# The good base of each command (small and fast); each case changes one thing.
BASE = {
    "demo": "demo -o {out}/demo --size 48 --steps 2 --weights {vgg} --device cpu -q",
    "transfer": "transfer {content} --style {style} -o {out}/out.png --size 32 --steps 2 "
    "--weights {vgg} --device cpu -q",
    "stylize": "stylize {content} --model {johnson} -o {out}/out.png --device cpu -q",
    "video": "video {video} --model {johnson} -o {out}/out.mp4 --device cpu -q",
    "train johnson": "train johnson --style {style} --content-dir {folder} -o {out}/j.safetensors "
    "--steps 1 --crop-size 32 --weights {vgg} --device cpu -q",
    "export": "export {johnson} -o {out}/j.onnx -q",
    "evaluate": "evaluate --content {content} --style {style} --results {content} --metrics ssim "
    "-o {out}/scores.csv --device cpu -q",
    "attend": "attend 'a cat' --words cat --model {pipeline} --steps 1 --size 32 -o {out}/maps "
    "--device cpu -q",
    "edit": "edit {content} --source 'a cat' --target 'a dog' --model {pipeline} --iterations 1 "
    "-o {out}/edit.png --device cpu -q",
    "generate": "generate 'a cat' --model {pipeline} --steps 1 --size 32 -o {out}/gen.png "
    "--device cpu -q",
    "study run": "study run --model {pipeline} --contents cat --styles Cubism --templates 1 "
    "--steps 1 --size 32 -o {out}/run --device cpu -q",
    "lora train": "lora train --images {folder} --trigger 'in sks style' --model {pipeline} "
    "--rank 2 --steps 1 --size 32 -o {out}/l.safetensors --device cpu -q",
    "regions": "regions {content} --caption 'a cat' --words cat --model {pipeline} --size 32 "
    "-o {out}/masks --device cpu -q",
    "benchmark": "benchmark --contents {folder} --styles {folder} --methods johnson:{johnson} "
    "--metrics ssim --size 32 --steps 1 -o {out}/bench --device cpu -q",
}

# Which flag is the command's count, and which input is its main file.
COUNT = {"demo": "--steps", "transfer": "--steps", "train johnson": "--steps", "attend": "--steps",
         "edit": "--iterations", "generate": "--steps", "study run": "--steps",
         "evaluate": "--batch-size", "video": "--steps", "lora train": "--steps",
         "benchmark": "--steps"}  # fmt: skip
MAIN_INPUT = {"transfer": "{content}", "stylize": "{content}", "video": "{video}",
              "export": "{johnson}", "edit": "{content}", "lora train": "{folder}",
              "regions": "{content}"}  # fmt: skip
SIZED = SIZED_COMMANDS
GENERATING = ["attend", "generate", "study run"]


def _with(argv: str, flag: str, value: str) -> str:
    """``argv`` with ``flag``'s value replaced (or the flag added)."""
    pattern = re.compile(rf"(?<=\s){re.escape(flag)} \S+")
    return (
        pattern.sub(f"{flag} {value}", argv) if pattern.search(argv) else f"{argv} {flag} {value}"
    )


def _cases() -> list[Case]:
    cases: list[Case] = []
    for command, base in BASE.items():
        if command in MAIN_INPUT:
            main_input = MAIN_INPUT[command]
            for bad, name in [("nonexistent", "{missing}"), ("not-an-image", "{not_image}"),
                              ("folder", "{a_folder}")]:  # fmt: skip
                if command in ("stylize", "video", "lora train") and bad == "folder":
                    continue  # a folder of images (of frames) is a documented input
                cases.append(Case(command, f"input {bad}", base.replace(main_input, name, 1)))
        if "--style {style}" in base:
            cases.append(Case(command, "style nonexistent",
                              base.replace("--style {style}", "--style {missing}")))  # fmt: skip
        if command in COUNT:
            for value in ("0", "-1"):
                cases.append(Case(command, f"{COUNT[command]} {value}",
                                  _with(base, COUNT[command], value)))  # fmt: skip
        if command in SIZED:
            cases.append(Case(command, "--size 100000", _with(base, "--size", "100000")))
            cases.append(Case(command, "--size 0", _with(base, "--size", "0")))
        if command in GENERATING:
            cases.append(
                Case(command, "--size 50 (not a multiple of 8)", _with(base, "--size", "50"))
            )
        if "--device" in base:
            cases.append(Case(command, "--device gpu7", _with(base, "--device", "gpu7")))
            cases.append(
                Case(command, "--device cuda:1 (no GPU)", _with(base, "--device", "cuda:1"))
            )
        cases.append(Case(command, "read-only output", base.replace("{out}", "{readonly}")))
    train = BASE["train johnson"]
    cases.append(Case("train johnson", "--crop-size 100000", _with(train, "--crop-size", "100000")))
    cases.append(Case("train johnson", "--crop-size 0", _with(train, "--crop-size", "0")))
    cases.append(Case("train johnson", "--arch huge", _with(train, "--arch", "huge")))
    stylize = BASE["stylize"]
    for value in ("0", "8", "-5"):
        cases.append(Case("stylize", f"--process-size {value}",
                          _with(stylize, "--process-size", value)))  # fmt: skip
    mask = BASE["transfer"]
    cases.append(Case("transfer", "two masks, one style", f"{mask} --mask {{mask}} {{mask}}"))
    cases.append(Case("transfer", "mask of another aspect", f"{mask} --mask {{mask_wide}}"))
    cases.append(Case("transfer", "--precondition -1", _with(mask, "--precondition", "-1")))
    adain = "stylize {content} --method adain --style {style} -o {out}/out.png --device cpu -q"
    cases.append(Case("stylize", "two masks, one style", f"{adain} --mask {{mask}} {{mask}}"))
    cases.append(Case("stylize", "mask of another aspect", f"{adain} --mask {{mask_wide}}"))
    photo = "stylize {content} --method wct2 --style {style} -o {out}/out.png --device cpu -q"
    for bad, argv in [
        ("--smooth with a Johnson model", f"{BASE['stylize']} --smooth"),
        ("--smooth bogus", f"{photo} --smooth bogus"),
        ("--content-mask without --style-mask", f"{photo} --content-mask {{mask}}"),
        ("masks for AdaIN", f"{adain} --content-mask {{mask}} --style-mask {{mask}}"),
        (
            "content mask of another aspect",
            f"{photo} --content-mask {{mask_wide}} --style-mask {{mask}}",
        ),
        ("content mask nonexistent", f"{photo} --content-mask {{missing}} --style-mask {{mask}}"),
        ("two style images", photo.replace("--style {style}", "--style {style} {style}")),
        ("--model given", f"{photo} --model {{johnson}}"),
        ("--mask (AdaIN's)", f"{photo} --mask {{mask}}"),
        ("--weights nonexistent", f"{photo} --weights {{missing}}"),
        (
            "photowct --weights nonexistent",
            photo.replace("wct2", "photowct") + " --weights {missing}",
        ),
    ]:
        cases.append(Case("stylize", f"wct2: {bad}", argv))
    cn = ("stylize {content} --method controlnet --style {style} --model {pipeline} "
          "-o {out}/out.png --steps 1 --device cpu -q")  # fmt: skip
    for bad, argv in [
        ("style not an image", cn.replace("--style {style}", "--style {not_image}")),
        ("two style images", cn.replace("--style {style}", "--style {style} {style}")),
        ("a folder of photos", cn.replace("{content}", "{a_folder}", 1)),
        ("model folder missing", cn.replace("{pipeline}", "{missing}")),
        ("--control-scale -1", f"{cn} --control-scale -1"),
        ("--canny-thresholds 200,100", f"{cn} --canny-thresholds 200,100"),
        ("--controlnet folder missing", f"{cn} --controlnet {{missing}}"),
        ("ControlNet not cached (offline)", cn),
        ("--preserve-color (feed-forward only)", f"{cn} --preserve-color"),
    ]:
        cases.append(Case("stylize", f"controlnet: {bad}", argv))
    sid = ("stylize {content} --method styleid --style {style} --model {pipeline} "
           "-o {out}/out.png --steps 1 --device cpu -q")  # fmt: skip
    for bad, argv in [
        ("style not an image", sid.replace("--style {style}", "--style {not_image}")),
        ("two style images", sid.replace("--style {style}", "--style {style} {style}")),
        ("a folder of photos", sid.replace("{content}", "{a_folder}", 1)),
        ("model folder missing", sid.replace("{pipeline}", "{missing}")),
        ("a Flux model", sid.replace("{pipeline}", "black-forest-labs/FLUX.1-dev")),
        ("--gamma 1.5", f"{sid} --gamma 1.5"),
        ("--temperature 0", f"{sid} --temperature 0"),
        ("--prompt given", f"{sid} --prompt 'a cat'"),
        ("--injection-steps past --steps", f"{sid} --injection-steps 2"),
        ("read-only output", sid.replace("{out}", "{readonly}")),
    ]:
        cases.append(Case("stylize", f"styleid: {bad}", argv))
    sa = ("generate 'a cat' 'a dog' --style-aligned --model {pipeline} --steps 1 --size 32 "
          "-o {out}/set --device cpu -q")  # fmt: skip
    long_prompt = "'" + "word " * 80 + "'"
    for bad, argv in [
        ("two prompts without --style-aligned", BASE["generate"].replace("'a cat'", "'a' 'b'")),
        ("-o a file", sa.replace("{out}/set", "{out}/set.png")),
        ("--reference not an image", f"{sa} --reference {{not_image}} --reference-prompt 'a'"),
        ("--reference without --reference-prompt", f"{sa} --reference {{content}}"),
        ("with --style", f"{sa} --style {{style}}"),
        ("--shared-score-scale -1", f"{sa} --shared-score-scale -1"),
        ("a prompt past the token limit", sa.replace("'a dog'", long_prompt)),
        ("read-only output", sa.replace("{out}", "{readonly}")),
    ]:
        cases.append(Case("generate", f"style-aligned: {bad}", argv))
    cases.append(Case("weights download", "unknown name", "weights download nosuchnet"))
    cases.append(Case("weights download", "unknown bundle", "weights download --bundle nope"))
    cases.append(Case("study status", "nonexistent run", "study status {missing}"))
    cases.append(Case("study report", "nonexistent run", "study report {missing} -o {out}/rep"))
    lora = BASE["lora train"]
    cases.append(Case("lora train", "--rank 0", _with(lora, "--rank", "0")))
    cases.append(Case("lora train", "--b-lora on SD 1.x", f"{lora} --b-lora style"))
    cases.append(Case("lora train", "--resume nonexistent", f"{lora} --resume {{missing}}"))
    cases.append(
        Case("lora train", "output not .safetensors", lora.replace("l.safetensors", "l.png"))
    )
    cases.append(
        Case("lora train", "no trigger, no captions", lora.replace("--trigger 'in sks style' ", ""))
    )
    cases.append(Case("lora train", "--sample-steps past the end", f"{lora} --sample-steps 5"))
    generate = BASE["generate"]
    cases.append(Case("generate", "--lora nonexistent", f"{generate} --lora {{missing}}:0.5"))
    cases.append(Case("generate", "--lora not safetensors", f"{generate} --lora {{not_image}}"))
    bench = BASE["benchmark"]
    for bad, argv in [
        ("unknown method", _with(bench, "--methods", "nosuch")),
        ("contents nonexistent", bench.replace("--contents {folder}", "--contents {missing}")),
        ("no inputs", bench.replace("--contents {folder} --styles {folder} ", "")),
        ("no -o", bench.replace("-o {out}/bench ", "")),
        ("every method's weights missing", _with(bench, "--methods", "wct,johnson")),
        ("unknown metric", _with(bench, "--metrics", "nosuch")),
        ("metric network missing (offline)", _with(bench, "--metrics", "lpips")),
        ("unknown protocol", "benchmark --protocol nosuch --data {folder} -o {out}/bench -q"),
        ("--protocol without --data", "benchmark --protocol styleid-20x40 -o {out}/bench -q"),
        ("protocol images missing",
         "benchmark --protocol styleid-20x40 --data {folder} -o {out}/bench -q"),
    ]:  # fmt: skip
        cases.append(Case("benchmark", bad, argv))
    for bad, argv in [
        ("nonexistent folder", "benchmark report {missing} -o {out}/r.html"),
        ("not a benchmark folder", "benchmark report {folder} -o {out}/r.html"),
        ("output not .html", "benchmark report {folder} -o {out}/r.txt"),
        ("three folders", "benchmark report {folder} {folder} {folder} -o {out}/r.html"),
        ("read-only output", "benchmark report {folder} -o {readonly}/r.html"),
    ]:
        cases.append(Case("benchmark report", bad, argv))
    cases.append(Case("lora info", "nonexistent file", "lora info {missing}"))
    cases.append(Case("lora info", "not safetensors", "lora info {not_image}"))
    regions = BASE["regions"]
    for bad, argv in [
        ("word not in the caption", regions.replace("cat --model", "dog --model")),
        ("'rest' as a word", regions.replace("cat --model", "cat rest --model")),
    ]:
        cases.append(Case("regions", bad, argv))
    region = ("transfer {content} --caption 'a cat on a hill' --region cat={style} "
              "-o {out}/out.png --maps-model {pipeline} --size 32 --steps 2 --weights {vgg} "
              "--device cpu -q")  # fmt: skip
    for bad, argv in [
        ("region word not in the caption", region.replace("cat={style}", "dog={style}")),
        ("overlapping regions", f"{region} --region cat,hill={{style}}"),
        ("region style not an image", region.replace("cat={style}", "cat={not_image}")),
        ("region style nonexistent", region.replace("cat={style}", "cat={missing}")),
        ("--region and --style", f"{region} --style {{style}}"),
        ("--region without --caption", region.replace("--caption 'a cat on a hill' ", "")),
        ("--mask WORD= of another aspect", f"{region} --mask cat={{mask_wide}}"),
    ]:
        cases.append(Case("transfer", f"regions: {bad}", argv))
    johnson_region = region.replace("transfer", "stylize", 1).replace(" --steps 2", "")
    cases.append(Case("stylize", "regions: a Johnson model",
                      johnson_region.replace("--weights {vgg}", "--model {johnson}")))  # fmt: skip
    cases.append(Case("generate", "regions: word not in the prompt",
                      f"{BASE['generate']} --region dog={{style}}"))  # fmt: skip
    cases.append(Case("ui", "--port 0", "ui --port 0"))
    cases.append(Case("ui", "--port 70000", "ui --port 70000"))
    cases.append(Case("ui", "--device gpu7", "ui --device gpu7"))
    cases.append(Case("ui", "--model folder missing", "ui --model {missing}"))
    cases.append(Case("ui", "--share maybe", "ui --share maybe"))
    evaluate = BASE["evaluate"]
    for bad, argv in [
        ("--metrics csd, --csd-weights missing", _with(evaluate, "--metrics", "csd")
         + " --csd-weights {missing}"),
        ("--metrics cfsd, --vgg-weights missing", _with(evaluate, "--metrics", "cfsd")
         + " --vgg-weights {missing}"),
        ("--metrics fid_inf with one result", _with(evaluate, "--metrics", "fid_inf")),
        ("--metrics csd_style (unknown)", _with(evaluate, "--metrics", "csd_style")),
    ]:  # fmt: skip
        cases.append(Case("evaluate", bad, argv))
    return cases


CASES = _cases()
TABLE: list[tuple[str, str, int, str]] = []


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code if isinstance(exit_.code, int) else 2
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}: {c.bad}" for c in CASES])
def test_bad_input_is_one_line_before_any_work(case, world, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    names = {key: str(value) for key, value in world.items()}
    names["a_folder"] = names["folder"]
    names.update(out=str(out), readonly=str(read_only_folder(tmp_path)))
    argv = [part.format(**names) for part in shlex.split(case.argv)]
    code, err = _run(argv, capsys)
    errors = [line for line in err.splitlines() if re.match(r"(brushwork.*: )?error:", line)]
    TABLE.append((case.command, case.bad, code, errors[0] if errors else err.strip()[-200:]))
    assert code != 0, f"{case.argv} succeeded"
    assert "Traceback" not in err
    assert len(errors) == 1, err
    assert list(out.iterdir()) == [], f"left behind: {list(out.iterdir())}"


def test_print_the_table(capsys):
    """Prints (command, bad input, exit code, message) — run after the cases (-s)."""
    with capsys.disabled():
        for command, bad, code, message in TABLE:
            print(f"| {command} | {bad} | {code} | {message} |")


# --------------------------------------------------------------------------- files and first run


def test_files_get_the_users_umask(world, tmp_path):
    previous = os.umask(0o022)
    try:
        out = tmp_path / "maps"
        argv = shlex.split(BASE["attend"].format(out=tmp_path, pipeline=world["pipeline"]))
        assert main(argv) == 0
        written = [p for p in out.rglob("*") if p.is_file()]
        assert written
        for path in written:
            assert path.stat().st_mode & 0o777 == 0o644, path
    finally:
        os.umask(previous)


def _readme_first_command() -> str:
    """The ``brushwork ...`` part of the README's first command line."""
    text = README.read_text()
    block = text.split("```sh", 1)[1].split("```", 1)[0]
    first = block.strip().splitlines()[0].split("#", 1)[0]
    return next(part.strip() for part in first.split("&&") if part.strip().startswith("brushwork"))


@pytest.fixture(scope="module")
def he_scaled_vgg19(tmp_path_factory) -> Path:
    """VGG-19 in the published layout with He-scaled random weights (activations of a
    realistic size, so the optimisation moves the pixels as with the real weights)."""
    from weights_testing import vgg19_shapes

    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in vgg19_shapes().items():
        fan_in = shape[1] * shape[2] * shape[3] if len(shape) == 4 else 1
        scale = (2.0 / fan_in) ** 0.5 if len(shape) == 4 else 0.0
        state[key] = torch.randn(shape, generator=generator) * scale
    path = tmp_path_factory.mktemp("vgg-he") / "vgg19-he.pth"
    torch.save(state, path)
    return path


def test_readme_first_command_makes_an_image(tmp_path, monkeypatch, he_scaled_vgg19):
    command = _readme_first_command()
    assert command.startswith("brushwork demo")
    monkeypatch.chdir(tmp_path)
    small = ["--size", "48", "--steps", "5", "--device", "cpu", "-q"]
    argv = [*shlex.split(command)[1:], *small, "--weights", str(he_scaled_vgg19)]
    assert main(argv) == 0
    from brushwork.image import load_image

    result = load_image(tmp_path / "demo" / "result.png")
    content = load_image(tmp_path / "demo" / "content.png")
    assert result.shape == content.shape and result.std() > 0.01
    assert not torch.equal(result, content)
    assert (tmp_path / "demo" / "sheet.png").is_file()


def test_readme_first_command_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*shlex.split(_readme_first_command())[1:], "--device", "cpu"]
    code, err = _run(argv, capsys)
    assert code == 1
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "vgg19-dcbb9e9d.pth" in err and "--weights PATH" in err
    assert not (tmp_path / "demo").exists()


def test_every_subcommand_is_covered():
    covered = {c.command for c in CASES} | {"weights list", "weights path"}
    missing = [c for c in COMMANDS if c not in covered and not c.startswith(("train ", "study "))]
    assert not missing, f"no bad-input cases for {missing}"
    assert set(SUBCOMMANDS) <= {c.split()[0] for c in COMMANDS}
