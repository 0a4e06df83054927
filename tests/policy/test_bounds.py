"""Hostile policy input fails fast and says so briefly: sizes, aliases, depth, paths, long values.

A 1 MB alias bomb once needed ~12 GB, a 169 KB file printed 500 MB of
errors, a FIFO given as a policy hung, and ``promotion_window: 9999999d``
validated and then crashed ``run --once``. Each case below must end as a
short problem naming the file (and line), never a hang or a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gatectl.policy import load_policies
from gatectl.policy.loader import MAX_BYTES, MAX_PROBLEMS
from gatectl.policy.yamlmarks import MAX_DEPTH, MAX_SCALAR, MAX_TEXT, MAX_VALUES

P = pytest.param
_W = "workflow_release_gate"

BARE = """\
workflow_release_gate:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria:
    exception_rate: "<= 0.04"
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def messages(*paths: str) -> list[str]:
    return [str(p) for p in load_policies(list(paths)).problems]


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


# --- durations a policy may give -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        P(
            BARE.replace("1h", "9999999d"),
            f"p.yaml:3: {_W}.promotion_window: must be at most 365d, got '9999999d'",
            id="window-in-days",
        ),
        P(
            BARE.replace("promotion_window: 1h", "promotion_window_hours: 8761"),
            f"p.yaml:3: {_W}.promotion_window_hours: must be at most 365d, got 8761",
            id="window-in-hours",
        ),
        P(
            BARE.replace("1h", "1e300"),
            f"p.yaml:3: {_W}.promotion_window: must be at most 365d, got 1e+300",
            id="window-huge-number",
        ),
        P(
            BARE + "  evaluation_interval: 400d\n",
            f"p.yaml:6: {_W}.evaluation_interval: must be at most 365d, got '400d'",
            id="interval",
        ),
        P(
            BARE + "  webhook: {url: 'http://127.0.0.1:1', timeout: 1e9}\n",
            f"p.yaml:6: {_W}.webhook.timeout: must be at most 365d, got 1000000000.0",
            id="webhook-timeout",
        ),
    ],
)
def test_policy_durations_are_at_most_a_year(text: str, expected: str) -> None:
    assert messages(write("p.yaml", text)) == [expected]


def test_a_window_of_a_year_is_accepted() -> None:
    (gate,) = load_policies([write("p.yaml", BARE.replace("1h", "365d"))]).gates
    assert gate.spec.promotion_window == 365 * 86400


# --- sizes ---------------------------------------------------------------------------------------


def test_file_over_one_mib_is_refused_before_parsing() -> None:
    write("big.yaml", BARE + "# " + "x" * MAX_BYTES + "\n")
    assert messages("big.yaml") == ["big.yaml: file too large (over 1 MiB): a policy is a few kB"]


def test_alias_bomb_of_lists_stops_at_the_value_budget() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    assert messages(write("bomb.yaml", "\n".join(lines) + "\n")) == [
        f"bomb.yaml:1: too large: over {MAX_VALUES} values once aliases are expanded"
    ]


def test_alias_bomb_of_merge_keys_stops_at_the_value_budget() -> None:
    lines = ["a0: &a0 {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}"]
    lines += [f"a{i}: &a{i} {{<<: [" + ", ".join([f"*a{i - 1}"] * 10) + "]}" for i in range(1, 9)]
    assert messages(write("bomb.yaml", "\n".join(lines) + "\n")) == [
        f"bomb.yaml:1: too large: over {MAX_VALUES} values once aliases are expanded"
    ]


def test_alias_bomb_of_long_strings_stops_at_the_text_budget() -> None:
    text = BARE + f'  owner: &s "{"x" * 60_000}"\n  metrics:\n'
    text += "".join(f"    m{i}: {{query: *s}}\n" for i in range(100))
    assert messages(write("bomb.yaml", text)) == [
        f"bomb.yaml:6: too large: over {MAX_TEXT} characters of text once aliases are expanded"
    ]


def test_the_budget_is_per_file_not_per_document() -> None:
    document = "a: &a [" + ", ".join(["x"] * 100) + "]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    text = "---\n".join([document] * 12)  # 12 x ~10,100 values: each fits, together they don't
    problems = messages(write("docs.yaml", text))
    assert problems[-1] == (
        f"docs.yaml:{1 + 3 * 9}: too large: over {MAX_VALUES} values once aliases are expanded"
    )


def test_one_scalar_longer_than_the_limit_is_refused() -> None:
    text = BARE + f"  owner: {'o' * (MAX_SCALAR + 1)}\n"
    assert messages(write("long.yaml", text)) == [
        f"long.yaml:6: {_W}.owner: value too long ({MAX_SCALAR + 1} characters, at most"
        f" {MAX_SCALAR})"
    ]


def test_a_number_of_over_a_hundred_digits_is_refused() -> None:
    text = BARE + f"  min_samples: {'9' * 101}\n"
    assert messages(write("n.yaml", text)) == [
        f"n.yaml:6: {_W}.min_samples: number too long (101 characters, at most 100)"
    ]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    text = "a:\n" + "".join("  " * i + "- \n" for i in range(1, MAX_DEPTH + 3))
    assert messages(write("deep.yaml", text)) == [
        f"deep.yaml:{MAX_DEPTH + 1}: nested too deeply (over {MAX_DEPTH} levels)"
    ]


def test_nesting_through_chained_aliases_is_refused() -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 2)]
    assert messages(write("chain.yaml", "\n".join(lines) + "\n")) == [
        f"chain.yaml:1: nested too deeply (over {MAX_DEPTH} levels)"
    ]


# --- how much a message may say ------------------------------------------------------------------


def test_problems_per_file_are_capped_and_the_cut_is_said() -> None:
    text = BARE + "".join(f"  typo{i}: 1\n" for i in range(200))
    problems = messages(write("typos.yaml", text))
    assert problems[:2] == [
        f"typos.yaml:6: {_W}.typo0: unknown field",
        f"typos.yaml:7: {_W}.typo1: unknown field",
    ]
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == (
        f"typos.yaml: too many problems: stopped after the first {MAX_PROBLEMS} in this file"
    )


def test_many_bad_documents_stop_after_the_cap() -> None:
    document = "workflow_release_gate: {canary_traffic: 2}\n---\n"
    problems = messages(write("docs.yaml", document * 5000))
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].endswith(f"stopped after the first {MAX_PROBLEMS} in this file")


def test_a_long_condition_is_quoted_as_a_short_excerpt() -> None:
    condition = "<= 0.04" + "x" * 50_000
    text = BARE.replace('"<= 0.04"', f'"{condition}"')
    assert messages(write("c.yaml", text)) == [
        f"c.yaml:5: {_W}.success_criteria.exception_rate: cannot parse condition"
        f" '{condition[:57]}...': expected OP VALUE, e.g. '<= 0.04', '== false' or"
        " '<= baseline * 1.2'"
    ]


def test_a_long_unknown_key_is_cut_in_the_field_path() -> None:
    text = BARE + "  " + "k" * 1000 + ": 1\n"
    assert messages(write("k.yaml", text)) == [f"k.yaml:6: {_W}.{'k' * 37}...: unknown field"]


def test_a_key_with_control_characters_is_escaped_in_the_field_path() -> None:
    text = BARE + '  "a\\nb\\u001b[31m": 1\n'
    assert messages(write("k.yaml", text)) == [f"k.yaml:6: {_W}.'a\\nb\\x1b[31m': unknown field"]


def test_a_long_list_in_a_message_is_cut() -> None:
    steps = [0.1] + [0.123456789012345] * 18 + [1.0]  # 20 steps (the most), not ascending
    text = BARE + f"  steps: {steps}\n"
    (problem,) = load_policies([write("s.yaml", text)]).problems
    whole = f"must be strictly ascending, got {steps}"
    assert problem.message == whole[:297] + "..."


# --- paths that are not regular files ------------------------------------------------------------


def test_a_fifo_is_refused_without_opening_it() -> None:
    os.mkfifo("pipe.yaml")
    assert messages("pipe.yaml") == [
        "pipe.yaml: not a regular file (a FIFO): a policy must be a file"
    ]


def test_a_character_device_is_refused() -> None:
    assert messages("/dev/null") == [
        "/dev/null: not a regular file (a character device): a policy must be a file"
    ]


def test_a_symlink_to_a_fifo_is_refused() -> None:
    os.mkfifo("pipe")
    os.symlink("pipe", "link.yaml")
    assert messages("link.yaml") == [
        "link.yaml: not a regular file (a FIFO): a policy must be a file"
    ]


def test_a_directory_names_its_odd_entries_and_loads_the_rest() -> None:
    os.mkdir("policies")
    write("policies/good.yaml", BARE)
    os.mkfifo("policies/pipe.yaml")
    os.mkdir("policies/sub.yml")
    os.symlink("/dev/null", "policies/null.yaml")
    result = load_policies(["policies"])
    assert [g.name for g in result.gates] == ["good"]
    assert [str(p) for p in result.problems] == [
        "policies/null.yaml: not a regular file (a character device): a policy must be a file",
        "policies/pipe.yaml: not a regular file (a FIFO): a policy must be a file",
        "policies/sub.yml: not a regular file (a directory): a policy must be a file",
    ]


def test_a_bad_tag_in_one_file_does_not_stop_the_others() -> None:
    os.mkdir("policies")
    write("policies/a.yaml", BARE.replace("0.1\n", "!!bool maybe\n"))
    write("policies/b.yaml", BARE.replace("0.1\n", "!!timestamp x\n"))
    write("policies/c.yaml", BARE)
    result = load_policies(["policies"])
    assert [g.name for g in result.gates] == ["c"]
    assert [str(p) for p in result.problems] == [
        f"policies/a.yaml:2: {_W}.canary_traffic: invalid YAML: cannot read 'maybe' as !!bool"
        " (expected true or false)",
        f"policies/b.yaml:2: {_W}.canary_traffic: unsupported YAML tag !!timestamp (a policy"
        " holds only strings, numbers, true/false, null, lists and mappings)",
    ]
