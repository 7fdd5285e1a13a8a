"""Region specs: parsing and the one-line errors before any model loads."""

from __future__ import annotations

import pytest

from brushwork.errors import ConfigError
from brushwork.regional.spec import (
    PHOTO,
    check_in_caption,
    check_specs,
    parse_mask_spec,
    parse_region_spec,
    style_targets,
)

CAPTION = "a cow on a hill under the Starry sky"


def test_parsing():
    spec = parse_region_spec('"hill,sky"=monet.jpg')
    assert spec.words == ("hill", "sky") and spec.target == "monet.jpg" and spec.name == "hill,sky"
    assert parse_region_spec("rest=Photo").keeps_photo and parse_region_spec("REST=x.png").is_rest
    assert parse_region_spec("cow=./photo").target == "./photo"
    assert parse_mask_spec("cow=masks/mask_cow.png") == ("cow", "masks/mask_cow.png")
    specs = [parse_region_spec(s) for s in ("cow=a.jpg", "hill=b.jpg", "sky=a.jpg", "rest=photo")]
    assert style_targets(specs) == ["a.jpg", "b.jpg"]
    assert check_specs(specs, caption=CAPTION) == specs
    assert specs[-1].target == PHOTO


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cow", "not WORDS=FILE"),
        ("cow=", "not WORDS=FILE"),
        ("=a.jpg", "empty word"),
        ("cow,,sky=a.jpg", "empty word"),
        ("rest,cow=a.jpg", "mixes 'rest'"),
    ],
)
def test_malformed_specs(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_region_spec(text)


def test_overlapping_missing_and_empty_specs():
    with pytest.raises(ConfigError, match="overlapping regions: 'SKY' is in both"):
        check_specs(
            [parse_region_spec("sky=a.jpg"), parse_region_spec("hill,SKY=b.jpg")], caption=None
        )
    with pytest.raises(ConfigError, match="'horse' is not in the caption"):
        check_specs([parse_region_spec("horse=a.jpg")], caption=CAPTION)
    with pytest.raises(ConfigError, match="only 'rest'"):
        check_specs([parse_region_spec("rest=a.jpg")], caption=CAPTION)
    with pytest.raises(ConfigError, match="keeps the photo"):
        check_specs([parse_region_spec("cow=photo")], caption=CAPTION)
    with pytest.raises(ConfigError, match="no region"):
        check_specs([], caption=CAPTION)
    with pytest.raises(ConfigError, match="one mask per word"):
        parse_mask_spec("cow,sky=m.png")


def test_caption_lookup_is_whole_words():
    check_in_caption(["Cow", "starry  sky", "sky"], CAPTION)
    with pytest.raises(ConfigError, match="'co' is not in the caption"):
        check_in_caption(["co"], CAPTION)
