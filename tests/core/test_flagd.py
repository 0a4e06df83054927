"""Setting one flag's fractional split: only its two weights change, or a clear refusal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gatectl.core.flagd import (
    FlagFileError,
    parse_flag_file,
    render_flag_file,
    set_split,
    split_of,
)

P = pytest.param
VARIANTS = {"ai": "ai", "deterministic": "deterministic"}


def _doc(targeting: Any = None, **other_flags: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": dict(VARIANTS),
        "defaultVariant": "deterministic",
    }
    if targeting is not None:
        flag["targeting"] = targeting
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {"triage-path": flag, **other_flags},
    }


OTHER = {
    "colour": {
        "state": "ENABLED",
        "variants": {"ai": "red", "deterministic": "blue"},
        "defaultVariant": "ai",
        "targeting": {"fractional": [["ai", 50], ["deterministic", 50]]},
    }
}


@pytest.mark.parametrize(
    ("share", "total", "weights"),
    [
        P(0.0, 100, (0, 100), id="fallback-all-deterministic"),
        P(0.1, 100, (10, 90), id="ten-percent"),
        P(0.001, 100, (1, 99), id="tiny-share-still-gets-one"),
        P(0.999, 100, (99, 1), id="deterministic-keeps-one"),
        P(1.0, 100, (100, 0), id="complete"),
        P(0.015, 1000, (15, 985), id="finer-total"),
        P(0.5, 1, (1, 0), id="total-one-rounds-half-to-ai"),
    ],
)
def test_split_of(share: float, total: int, weights: tuple[int, int]) -> None:
    assert split_of(share, total) == weights


@pytest.mark.parametrize(
    ("targeting", "expected"),
    [
        P(None, {"fractional": [["ai", 25], ["deterministic", 75]]}, id="no-targeting-gets-one"),
        P({}, {"fractional": [["ai", 25], ["deterministic", 75]]}, id="empty-targeting"),
        P(
            {"fractional": [["ai", 50], ["deterministic", 50]]},
            {"fractional": [["ai", 25], ["deterministic", 75]]},
            id="top-level",
        ),
        P(
            {"fractional": [["deterministic", 90], ["ai", 10]]},
            {"fractional": [["deterministic", 75], ["ai", 25]]},
            id="order-kept",
        ),
        P(
            {"fractional": [["ai"], ["deterministic"]]},
            {"fractional": [["ai", 25], ["deterministic", 75]]},
            id="implicit-weights-made-explicit",
        ),
        P(
            {"fractional": [{"var": "email"}, ["ai", 1], ["deterministic", 1]]},
            {"fractional": [{"var": "email"}, ["ai", 25], ["deterministic", 75]]},
            id="bucketing-expression-kept",
        ),
        P(
            {
                "if": [
                    {"in": ["@example.com", {"var": "email"}]},
                    "deterministic",
                    {"fractional": [["ai", 5], ["deterministic", 95]]},
                ]
            },
            {
                "if": [
                    {"in": ["@example.com", {"var": "email"}]},
                    "deterministic",
                    {"fractional": [["ai", 25], ["deterministic", 75]]},
                ]
            },
            id="nested-in-if-rest-kept",
        ),
        P(
            {
                "if": [
                    {"var": "beta"},
                    {"fractional": [["ai", 50], ["deterministic", 50]]},
                    {"fractional": [["ai", 1], ["deterministic", 99]]},
                ]
            },
            {
                "if": [
                    {"var": "beta"},
                    {"fractional": [["ai", 25], ["deterministic", 75]]},
                    {"fractional": [["ai", 25], ["deterministic", 75]]},
                ]
            },
            id="every-split-of-the-two",
        ),
        P(
            {
                "if": [
                    {"var": "beta"},
                    {"fractional": [["ai", 1], ["other", 1], ["deterministic", 1]]},
                    {"fractional": [["ai", 1], ["deterministic", 99]]},
                ]
            },
            {
                "if": [
                    {"var": "beta"},
                    {"fractional": [["ai", 1], ["other", 1], ["deterministic", 1]]},
                    {"fractional": [["ai", 25], ["deterministic", 75]]},
                ]
            },
            id="three-way-split-left-alone",
        ),
    ],
)
def test_set_split_changes_only_the_weights(targeting: Any, expected: Any) -> None:
    document = _doc(targeting, **copy.deepcopy(OTHER))
    before = copy.deepcopy(document)
    result = set_split(
        document,
        flag="triage-path",
        ai_variant="ai",
        deterministic_variant="deterministic",
        weights=(25, 75),
    )
    assert document == before, "the input is never modified"
    assert result["flags"]["triage-path"]["targeting"] == expected
    assert result["flags"]["colour"] == OTHER["colour"]
    assert {k: v for k, v in result["flags"]["triage-path"].items() if k != "targeting"} == {
        k: v for k, v in before["flags"]["triage-path"].items() if k != "targeting"
    }
    assert result["$schema"] == before["$schema"]


@pytest.mark.parametrize(
    ("document", "flag", "message"),
    [
        P({"flag": {}}, "triage-path", "no 'flags' object in the flag definitions", id="no-flags"),
        P(
            _doc(None, **OTHER),
            "missing",
            "no flag 'missing' (flags: colour, triage-path)",
            id="no-flag",
        ),
        P(
            {"flags": {"triage-path": {"variants": {"ai": 1}}}},
            "triage-path",
            "flag 'triage-path' has no variant 'deterministic'",
            id="no-variant",
        ),
        P(
            {"flags": {"triage-path": {"state": "ENABLED"}}},
            "triage-path",
            "flag 'triage-path' has no variant 'ai', 'deterministic'",
            id="no-variants",
        ),
        P(
            _doc({"if": [{"var": "beta"}, "ai", "deterministic"]}),
            "triage-path",
            "flag 'triage-path': its targeting has no fractional split between exactly 'ai'"
            " and 'deterministic' to set",
            id="targeting-without-split",
        ),
        P(
            _doc({"fractional": [["ai", 1], ["other", 1], ["deterministic", 1]]}),
            "triage-path",
            "flag 'triage-path': its targeting has no fractional split between exactly 'ai'"
            " and 'deterministic' to set",
            id="only-a-three-way-split",
        ),
        P(
            _doc({"$ref": "shared-split"}),
            "triage-path",
            "flag 'triage-path': its targeting has no fractional split between exactly 'ai'"
            " and 'deterministic' to set",
            id="shared-evaluator-not-guessed",
        ),
    ],
)
def test_set_split_refuses(document: dict[str, Any], flag: str, message: str) -> None:
    with pytest.raises(FlagFileError) as caught:
        set_split(
            document,
            flag=flag,
            ai_variant="ai",
            deterministic_variant="deterministic",
            weights=(1, 99),
        )
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        P("{\n  'flags': 1\n}", "f.json: not a JSON flag file (line 2)", id="not-json"),
        P("[1, 2]", "f.json: a flag file is a JSON object with 'flags'", id="not-object"),
        P("", "f.json: not a JSON flag file (line 1)", id="empty"),
    ],
)
def test_parse_flag_file_refuses(text: str, message: str) -> None:
    with pytest.raises(FlagFileError) as caught:
        parse_flag_file(text, where="f.json")
    assert str(caught.value) == message


def test_render_keeps_key_order_and_round_trips() -> None:
    document = {"z": 1, "flags": {"b": {"state": "ENABLED"}, "a": {"state": "DISABLED"}}}
    text = render_flag_file(document)
    assert text.index('"z"') < text.index('"flags"') and text.index('"b"') < text.index('"a"')
    assert parse_flag_file(text, where="x") == document
