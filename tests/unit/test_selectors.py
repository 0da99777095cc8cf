"""kubectl's equality-based label selectors: parsing and matching, by table."""

from __future__ import annotations

import pytest

from fleetmatch.cli.selectors import Op, Requirement, SelectorError, matches, parse

LABELS = {"agones.dev/fleet": "arena", "tier": "gold", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("tier=gold", (Requirement("tier", Op.EQUALS, "gold"),)),
        ("tier==gold", (Requirement("tier", Op.EQUALS, "gold"),)),
        ("tier!=gold", (Requirement("tier", Op.NOT_EQUALS, "gold"),)),
        ("tier", (Requirement("tier", Op.EXISTS),)),
        ("!tier", (Requirement("tier", Op.NOT_EXISTS),)),
        ("empty=", (Requirement("empty", Op.EQUALS, ""),)),
        (
            " agones.dev/fleet = arena , !zone ",
            (Requirement("agones.dev/fleet", Op.EQUALS, "arena"), Requirement("zone", Op.NOT_EXISTS)),
        ),
    ],
)
def test_parse(text: str, expected: tuple[Requirement, ...]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a b=c", "not a valid label key"),
        ("tier=go ld", "not a valid label value"),
        ("=gold", "not a valid label key"),
        ("tier=gold,", "empty requirement"),
        ("tier in (gold,silver)", "not supported"),
        ("tier notin (gold)", "not supported"),
        ("!", "not a valid label key"),
        ("-tier=x", "not a valid label key"),
    ],
)
def test_bad_selectors_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(SelectorError, match=needle):
        parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("tier=gold", True),
        ("tier==silver", False),
        ("tier!=silver", True),
        ("zone!=eu", True),  # a missing key is "not equal", as in Kubernetes
        ("tier", True),
        ("zone", False),
        ("!zone", True),
        ("!tier", False),
        ("empty=", True),
        ("agones.dev/fleet=arena,tier=gold", True),
        ("agones.dev/fleet=arena,tier=silver", False),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert matches(parse(text), LABELS) is expected
