"""A mutation corpus over the example policies: bad input is a short problem, never a gate.

Each example policy is mutated the way a careless or hostile author would:
a value swapped for a YAML 1.1 word, a tag, a huge or non-finite number,
non-ASCII digits, a long string, deep nesting, an alias bomb; lines
deleted, duplicated or re-indented. Whatever comes out, loading it must

- give gates and problems, never raise (no exit 1 in the CLI);
- report each problem briefly (bounded message, bounded count per file);
- only ever give gates that are safe to act on: ``canary_traffic`` in
  (0, 1], ascending steps starting at it and ending at 1.0, finite positive
  windows of at most a year, counts that are integers.
"""

from __future__ import annotations

import itertools
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatectl.cli import main
from gatectl.errors import PolicyError
from gatectl.policy import Gate, load_policies
from gatectl.policy.durations import MAX_POLICY_DURATION
from gatectl.policy.loader import MAX_PROBLEMS

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"))
CORPUS = [p.read_text(encoding="utf-8") for p in EXAMPLES]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_RENDERED = 1000
"""A rendered problem: file, line, a path of at most 300 and a message of at most 300 characters."""

PLAIN_NUMBER = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
VALUES = [
    # YAML 1.1 booleans and other implicit conversions
    *("yes", "no", "on", "off", "y", "n", "Yes", "OFF", "true", "false", "~", "null", ""),
    *("1:30", "0o17", "0x10", "017", "1_000", "2026-01-01", "2026-01-01T00:00:00Z"),
    # type swaps
    *('"0.1"', "'48'", "[]", "{}", "[0.1, true]", "{a: 1}", "- x", '"<= 0.04"', "hold"),
    # numbers at and past every edge
    *("0", "-0", "-1", "1", "1.0", "1.0000001", "0.0000001", "1e308", "1e400", "-1e400"),
    *(".inf", "-.inf", ".nan", "9" * 99, "9" * 101, "4.9e-324", "2e-1", "+0.5"),
    # durations
    *("9999999d", "366d", "365d", "8761", "0s", "1ms", "48h", "1h30m", "٤٨h", "1e12"),
    # tags
    *("!!bool maybe", "!!bool yes", "!!timestamp x", "!!timestamp 2026-01-01", "!!int 1.5"),
    *("!!float x", "!!null 0", "!!str 0.1", "!!binary aGk=", "!!python/object:os.system x"),
    *("!!python/object/apply:os.system [ls]", "!foo 1", "!!set {a}", "!!omap [{a: 1}]"),
    # unicode and long text
    *("１", "٠٫١", "'\u202e0.1'", "'\u0000'", '"\\x1b[31m"', "🦄", "'" + "x" * 70_000 + "'"),
    # nesting and aliases
    *("[" * 40 + "]" * 40, "{a: " * 40 + "1" + "}" * 40, "&a [*a]", "*missing", "<<: *x"),
]


def _mutate_line(line: str, value: str) -> str:
    """``key: value`` or ``- value`` with its value replaced; other lines unchanged."""
    head, sep, _ = line.partition(": ")
    if sep:
        return f"{head}: {value}"
    stripped = line.lstrip()
    if stripped.startswith("- "):
        return line[: len(line) - len(stripped)] + "- " + value
    return line


@st.composite
def mutants(draw: st.DrawFn) -> str:
    """One example policy with one to three mutations."""
    lines = draw(st.sampled_from(CORPUS)).splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["value", "value", "value", "text", "delete", "dup", "indent"]))
        if kind == "value":
            lines[index] = _mutate_line(lines[index], draw(st.sampled_from(VALUES)))
        elif kind == "text":
            lines[index] = _mutate_line(lines[index], draw(st.text(max_size=30)).replace("\n", " "))
        elif kind == "delete" and len(lines) > 1:
            del lines[index]
        elif kind == "dup":
            lines.insert(index, lines[index])
        elif kind == "indent":
            lines[index] = "  " + lines[index]
    return "\n".join(lines) + "\n"


def _load(text: str) -> tuple[list[Gate], list[PolicyError], str]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "policy.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = load_policies([path])  # any exception fails the test
    return result.gates, result.problems, str(path)


def assert_safe(gate: Gate) -> None:
    """What the controller relies on when it acts on a gate."""
    spec = gate.spec
    assert type(spec.canary_traffic) is float
    assert 0.0 < spec.canary_traffic <= 1.0
    shares = spec.shares
    assert all(type(s) is float and 0.0 < s <= 1.0 for s in shares)
    assert all(a < b for a, b in itertools.pairwise(shares))
    assert shares[0] == spec.canary_traffic
    assert shares[-1] == 1.0
    for window in (spec.promotion_window, spec.evaluation_interval, spec.prometheus.timeout):
        assert math.isfinite(window)
        assert 0.0 < window <= MAX_POLICY_DURATION
    assert type(spec.min_samples) is int and spec.min_samples >= 0
    assert type(spec.max_inconclusive) is int and spec.max_inconclusive >= 1
    assert spec.confidence is None or 0.5 < spec.confidence < 1.0
    assert spec.success_criteria


def assert_bounded(problems: list[PolicyError], path: str) -> None:
    assert len(problems) <= MAX_PROBLEMS + 1
    for problem in problems:
        assert isinstance(problem, PolicyError)
        assert problem.file == path
        rendered = problem.render()
        assert len(rendered) <= MAX_RENDERED
        assert "\n" not in rendered


def test_the_corpus_is_the_example_policies() -> None:
    assert [p.name for p in EXAMPLES] == [
        "document-intake.yaml",
        "request-routing.yaml",
        "ticket-triage.yaml",
    ]
    for text in CORPUS:
        gates, problems, _ = _load(text)
        assert problems == []
        (gate,) = gates
        assert_safe(gate)


@pytest.mark.parametrize("value", [pytest.param(v, id=f"value-{i}") for i, v in enumerate(VALUES)])
def test_every_corpus_value_in_canary_traffic_is_refused_or_safe(value: str) -> None:
    text = CORPUS[-1].replace("canary_traffic: 0.10", f"canary_traffic: {value}")
    gates, problems, path = _load(text)
    assert_bounded(problems, path)
    for gate in gates:
        assert_safe(gate)
        # only a number written as a number is a share: not yes, "0.1", !!bool true, ...
        assert PLAIN_NUMBER.fullmatch(value)
        assert gate.spec.canary_traffic == float(value)
    assert gates or problems


@FUZZ
@given(mutants())
def test_mutated_examples_load_to_safe_gates_or_short_problems(text: str) -> None:
    gates, problems, path = _load(text)
    assert_bounded(problems, path)
    for gate in gates:
        assert_safe(gate)
    assert gates or problems


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutants())
def test_validate_exits_0_or_2_on_mutated_examples(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "policy.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        code = main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert code in (0, 2), err
    assert "internal error" not in err
    assert "Traceback" not in err
    assert len(err) <= (MAX_PROBLEMS + 2) * MAX_RENDERED
