"""Finding and pairing the image files to score.

Files are paired by name (the file stem, without the extension). For style
transfer, a result ``X.png`` is paired with content ``X.*`` and style ``X.*``
when all three folders use the same names; otherwise a result named
``<content>_<style>.png`` (separator ``_``, ``-``, ``__`` or ``_stylized_``) is paired
with content ``<content>.*`` and style ``<style>.*`` — the usual layout of the
content × style protocol. A single file given for the style (or the content) is
paired with every result. Problems are reported with the names of the files
involved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brushwork.errors import ImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "EditPair",
    "StyleTriple",
    "list_images",
    "pair_by_name",
    "pair_style_triples",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: Separators tried between the content and the style name of a result file.
SEPARATORS = ("_stylized_", "__", "_", "-")
_SHOWN = 8


@dataclass(frozen=True)
class StyleTriple:
    """One stylisation result with the content and style images it came from."""

    name: str
    content: Path
    style: Path
    result: Path


@dataclass(frozen=True)
class EditPair:
    """One item scored against a reference (input → result)."""

    name: str
    reference: Path
    result: Path


def _show(names: Sequence[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", … ({len(names)} in all)" if len(names) > _SHOWN else "")


def list_images(path: str | os.PathLike[str], *, what: str) -> list[Path]:
    """The image files at ``path`` (a file, or a folder's images sorted by name).

    Raises:
        ImageError: the path does not exist, or a folder holds no images.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if not p.exists():
        raise ImageError(f"{what} {p} does not exist")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(
            f"{what} folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)}); check the path"
        )
    return files


def _by_stem(files: Sequence[Path], what: str) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ImageError(
                f"{what} has two files named {f.stem!r} ({stems[f.stem].name}, {f.name}); "
                "files are paired by name without the extension, so keep one"
            )
        stems[f.stem] = f
    return stems


def pair_by_name(
    references: Sequence[Path], results: Sequence[Path], *, what: str = "input"
) -> list[EditPair]:
    """Pair results with references of the same stem (one reference pairs with all).

    Raises:
        ImageError: naming the results without a reference and the references
            without a result.
    """
    if (
        len(references) == 1
        and len(results) >= 1
        and (len(results) == 1 or references[0].stem not in {r.stem for r in results})
    ):
        return [EditPair(r.stem, references[0], r) for r in results]
    refs = _by_stem(references, what)
    outs = _by_stem(results, "results")
    no_ref = [outs[s].name for s in outs if s not in refs]
    no_out = [refs[s].name for s in refs if s not in outs]
    problems = []
    if no_ref:
        problems.append(f"{len(no_ref)} result(s) have no {what} of the same name: {_show(no_ref)}")
    if no_out:
        problems.append(f"{len(no_out)} {what} image(s) have no result: {_show(no_out)}")
    if problems:
        raise ImageError(
            "cannot pair the files by name: " + "; ".join(problems) + ". Give each result the "
            f"name of its {what} image (any extension)"
        )
    return [EditPair(s, refs[s], outs[s]) for s in sorted(outs)]


def pair_style_triples(
    contents: Sequence[Path], styles: Sequence[Path], results: Sequence[Path]
) -> list[StyleTriple]:
    """Pair each result with its content and style image (see the module docstring).

    Raises:
        ImageError: naming the results that match no content/style, and the
            content images that have no result.
    """
    content = _by_stem(contents, "the content set")
    style = _by_stem(styles, "the style set")
    outs = _by_stem(results, "the results")
    single_content = next(iter(content.values())) if len(content) == 1 else None
    single_style = next(iter(style.values())) if len(style) == 1 else None
    triples: list[StyleTriple] = []
    unpaired: list[str] = []
    for stem in sorted(outs):
        match = _match(stem, content, style, single_content, single_style)
        if match is None:
            unpaired.append(outs[stem].name)
        else:
            triples.append(StyleTriple(stem, match[0], match[1], outs[stem]))
    used = {t.content for t in triples}
    no_result = [p.name for p in content.values() if p not in used]
    problems = []
    if unpaired:
        problems.append(
            f"{len(unpaired)} result(s) match no content/style image by name: {_show(unpaired)}"
        )
    if no_result:
        problems.append(f"{len(no_result)} content image(s) have no result: {_show(no_result)}")
    if problems:
        raise ImageError(
            "cannot pair the files by name: "
            + "; ".join(problems)
            + ". Name each result like its content and style image (X.png in all three "
            "folders), or <content>_<style>.png"
        )
    return triples


def _match(
    stem: str,
    content: dict[str, Path],
    style: dict[str, Path],
    single_content: Path | None,
    single_style: Path | None,
) -> tuple[Path, Path] | None:
    """(content, style) for result ``stem``, or None."""
    c = content.get(stem) or single_content
    s = style.get(stem) or single_style
    if c is not None and s is not None and (stem in content or stem in style or len(content) == 1):
        return c, s
    # <content><sep><style>: longest content name first, so "a_b" wins over "a".
    for c_stem in sorted(content, key=len, reverse=True):
        for sep in SEPARATORS:
            prefix = c_stem + sep
            if stem.startswith(prefix):
                rest = stem[len(prefix) :]
                if rest in style:
                    return content[c_stem], style[rest]
                if single_style is not None and rest:
                    return content[c_stem], single_style
    return None
