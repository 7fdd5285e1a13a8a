"""The inputs of a benchmark: a named protocol's file lists, or the user's own folders.

A protocol names its content and style files (with their SHA-256, size in bytes and
pixel size) in package data; the user provides the images — nothing is downloaded.
``styleid-20x40`` is StyleID's evaluation set (Chung et al., CVPR 2024): the 20 MS-COCO
contents of ``data/cnt`` and the 40 WikiArt styles of ``data/sty`` in
github.com/jiwoogit/StyleID, 800 pairs at 512 × 512. Fetch them with::

    git clone --depth 1 https://github.com/jiwoogit/StyleID
    mkdir -p bench_data && cp -r StyleID/data/cnt StyleID/data/sty bench_data/

and pass ``--data bench_data/`` (``cnt/`` and ``sty/`` inside, or ``contents/`` and
``styles/``). :func:`protocol_inputs` checks every file is there and is the listed file.

Example::

    inputs = protocol_inputs("styleid-20x40", "bench_data/")
    inputs = folder_inputs("contents/", "styles/")
    inputs.contents[0].name, inputs.contents[0].path
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from brushwork.errors import ConfigError, ImageError

__all__ = [
    "PROTOCOLS",
    "BenchmarkInputs",
    "InputImage",
    "Protocol",
    "folder_inputs",
    "get_protocol",
    "protocol_inputs",
]


@dataclass(frozen=True)
class ListedFile:
    """One file of a protocol's list."""

    name: str
    sha256: str
    size_bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class Protocol:
    """A named benchmark set.

    Attributes:
        name: ``--protocol`` value.
        contents, styles: the listed files, in order.
        content_folders, style_folders: sub-folder names of ``--data`` that may hold them
            (the first that exists is used).
        size: the long side the protocol's methods run at.
        seed: the protocol's seed (StyleID's script seeds 22; its method is
            deterministic, so the seed changes only the methods that draw noise).
        source: where the images come from, for the docs and the report.
    """

    name: str
    contents: tuple[ListedFile, ...]
    styles: tuple[ListedFile, ...]
    content_folders: tuple[str, ...]
    style_folders: tuple[str, ...]
    size: int
    seed: int
    source: str


def _read_list(name: str) -> tuple[ListedFile, ...]:
    text = resources.files("brushwork.benchmark").joinpath(f"data/{name}.txt").read_text("utf-8")
    files = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        file, digest, size, pixels = line.split()
        width, height = (int(v) for v in pixels.split("x"))
        files.append(ListedFile(file, digest, int(size), width, height))
    return tuple(files)


def _styleid() -> Protocol:
    return Protocol(
        name="styleid-20x40",
        contents=_read_list("styleid_contents"),
        styles=_read_list("styleid_styles"),
        content_folders=("cnt", "contents", "content"),
        style_folders=("sty", "styles", "style"),
        size=512,
        seed=22,
        source="github.com/jiwoogit/StyleID data/cnt (MS-COCO) and data/sty (WikiArt)",
    )


#: ``--protocol`` name -> a function giving the protocol (file lists read on demand).
PROTOCOLS = {"styleid-20x40": _styleid}


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``; ConfigError naming the valid ones."""
    if name not in PROTOCOLS:
        import difflib

        close = difflib.get_close_matches(name, PROTOCOLS, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown protocol '{name}'{hint} (valid: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]()


@dataclass(frozen=True)
class InputImage:
    """A content or style image: its name (the file stem) and path."""

    name: str
    path: Path


@dataclass
class BenchmarkInputs:
    """What a benchmark runs on.

    Attributes:
        contents, styles: the images, by name.
        unreadable: (path, reason) of files that were listed or found but do not open as
            images; they are left out and listed in the report.
        protocol: the protocol name, or ``None`` for the user's folders.
    """

    contents: list[InputImage]
    styles: list[InputImage]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    protocol: str | None = None


def _subfolder(data: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (data / name).is_dir():
            return data / name
    raise ImageError(
        f"--data {data} has no {what} folder (looked for {', '.join(n + '/' for n in names)}); "
        "see docs/benchmark.md for how to fetch the protocol's images"
    )


def protocol_inputs(
    name: str, data: str | os.PathLike[str], *, verify: bool = True
) -> BenchmarkInputs:
    """The protocol's images under ``data``, each checked against its listed SHA-256.

    Raises:
        ConfigError: unknown protocol.
        ImageError: ``data`` or a sub-folder is missing, or files are missing or differ
            from the listed ones (all named at once, with how to fetch them).
    """
    from brushwork.weights import sha256_file

    protocol = get_protocol(name)
    root = Path(data).expanduser()
    if not root.is_dir():
        raise ImageError(f"--data {root} is not a folder; see docs/benchmark.md")
    problems: list[str] = []
    found: dict[str, list[InputImage]] = {}
    for what, listed, names in (
        ("content", protocol.contents, protocol.content_folders),
        ("style", protocol.styles, protocol.style_folders),
    ):
        folder = _subfolder(root, names, what)
        images = []
        for item in listed:
            path = folder / item.name
            if not path.is_file():
                problems.append(f"{what} {path} is missing")
            elif verify and (
                path.stat().st_size != item.size_bytes or sha256_file(path) != item.sha256
            ):
                problems.append(f"{what} {path} is not the listed file (SHA-256 differs)")
            else:
                images.append(InputImage(Path(item.name).stem, path))
        found[what] = images
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; … {len(problems)} in all" if len(problems) > 5 else ""
        )
        raise ImageError(
            f"the {name} images under {root} are incomplete: {shown}. Fetch them from "
            f"{protocol.source} (docs/benchmark.md)"
        )
    return BenchmarkInputs(found["content"], found["style"], protocol=name)


def folder_inputs(
    contents: str | os.PathLike[str], styles: str | os.PathLike[str]
) -> BenchmarkInputs:
    """Every image of the ``contents`` and ``styles`` folders (or single files), by name.

    Files that do not open as images are left out and listed in ``unreadable``.

    Raises:
        ImageError: a folder is missing or holds no readable image; two files share a name.
    """
    from brushwork.metrics.pairing import list_images

    unreadable: list[tuple[str, str]] = []
    chosen: dict[str, list[InputImage]] = {}
    for what, where in (("content", contents), ("style", styles)):
        images: dict[str, InputImage] = {}
        for path in list_images(where, what=what):
            reason = _unreadable(path)
            if reason is not None:
                unreadable.append((str(path), reason))
                continue
            if path.stem in images:
                raise ImageError(
                    f"two {what} images are named {path.stem!r} ({images[path.stem].path.name}, "
                    f"{path.name}); results are named by the file stem, so keep one"
                )
            images[path.stem] = InputImage(path.stem, path)
        if not images:
            raise ImageError(f"no {what} image in {where} opens (all {len(unreadable)} unreadable)")
        chosen[what] = list(images.values())
    return BenchmarkInputs(chosen["content"], chosen["style"], unreadable)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` does not open as an image (one line), or ``None``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        text = str(error).strip().splitlines()
        return text[0] if text else type(error).__name__
    return None
