"""The prompt grid: the paper's 16,000 prompts, order, seeds, words; user lists."""

from __future__ import annotations

import pytest

from brushwork.errors import ConfigError
from brushwork.experiments.grid import (
    TEMPLATES,
    build_grid,
    load_list,
    paper_contents,
    paper_styles,
    parse_list,
    parse_templates,
)


@pytest.fixture(scope="module")
def paper():
    return build_grid()


def test_study_paper_lists_are_packaged():
    contents, styles = paper_contents(), paper_styles()
    assert len(contents) == 80 and contents[0] == "person" and contents[-1] == "toothbrush"
    assert "traffic light" in contents
    assert len(styles) == 50
    assert styles[0] == "Abstract Expressionism" and styles[-1] == "Vincent van Gogh"
    assert styles[27] == "Albrecht Durer" == load_list("wikiart_artists")[0]
    assert "Ukiyo e" in styles


def test_study_paper_grid_size_order_and_seeds(paper):
    assert len(paper) == 16_000
    assert [p.index for p in paper] == list(range(16_000))
    assert all(p.seed == p.index for p in paper)
    assert paper[0].prompt == "a painting of a person in the Abstract Expressionism style"
    assert paper[15_999].prompt == "a toothbrush with Vincent van Gogh style"
    # style varies fastest, then content, then template
    assert paper[1].prompt == "a painting of a person in the Action painting style"
    assert paper[27].prompt == "a painting of a person in the Albrecht Durer style"
    assert paper[50].prompt == "a painting of a bicycle in the Abstract Expressionism style"
    assert paper[4000].prompt == "a Abstract Expressionism painting of a person"
    assert paper[8000 + 9 * 50 + 49].prompt == "a traffic light in the Vincent van Gogh style"
    assert paper[12_000].prompt == "a person with Abstract Expressionism style"
    assert len({p.prompt for p in paper}) == 16_000


def test_study_template_words(paper):
    first = paper[0]
    assert first.words == (
        "a", "painting", "of", "a", "person", "in", "the", "Abstract Expressionism", "style",
    )  # fmt: skip
    assert (first.content_word, first.style_word) == (4, 7)
    assert [len(paper[t * 4000].words) for t in range(4)] == [9, 6, 6, 5]
    second = paper[4000 + 9 * 50 + 49]
    assert second.words == ("a", "Vincent van Gogh", "painting", "of", "a", "traffic light")
    assert (second.content_word, second.style_word) == (5, 1)
    assert " ".join(second.words) == second.prompt


def test_study_user_lists_and_templates(tmp_path):
    listing = tmp_path / "styles.txt"
    listing.write_text("Rembrandt\n\nCubism\n")
    grid = build_grid(
        templates=parse_templates("1,3"),
        contents=parse_list("cow, giraffe", []),
        styles=parse_list(str(listing), []),
    )
    assert [p.prompt for p in grid[:2]] == [
        "a painting of a cow in the Rembrandt style",
        "a painting of a cow in the Cubism style",
    ]
    assert grid[-1].prompt == "a giraffe in the Cubism style" and grid[-1].seed == 7
    custom = parse_templates("<STYLE> art of a <CONTENT>|a <CONTENT> by <STYLE>")
    grid = build_grid(templates=custom, contents=["cow"], styles=["Monet"])
    assert [p.prompt for p in grid] == ["Monet art of a cow", "a cow by Monet"]
    assert parse_templates(None) == list(TEMPLATES)


@pytest.mark.parametrize(
    "text", ["5", "a <CONTENT> painting", "<STYLE> <STYLE> <CONTENT>", "a <CONTENT>-<STYLE>"]
)
def test_study_bad_templates_are_refused(text):
    with pytest.raises(ConfigError):
        parse_templates(text)


def test_study_bad_lists_are_refused():
    with pytest.raises(ConfigError, match="empty"):
        parse_list(" , ", [])
    with pytest.raises(ConfigError, match="repeats"):
        parse_list("cow,cow", [])
