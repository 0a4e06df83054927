"""The command line without a real Prometheus: flags, usage errors, bad policies, exit codes.

No Prometheus answers here: every decision, exit code, output format and URL
setting is tested against a real one in ``tests/e2e`` (test_evaluate_real.py,
test_evaluate_settings_real.py). Bad input must always end as exit 2 with a
one-line message and never a traceback, before any query is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gatectl import __version__
from gatectl.adapters.prometheus import PrometheusClient
from gatectl.cli import main

SEED = """\
workflow_release_gate:
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - reviewer_queue_sla_breach == true
    - critical_regressions > 0
  fallback_mode: deterministic_path
"""
AT = "2026-11-20T12:00:00Z"
STARTED = "2026-11-18T11:00:00Z"
"""49h before AT: the seed's 48h window has passed."""


@pytest.fixture(autouse=True)
def _no_prometheus_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATECTL_PROMETHEUS_URL", raising=False)


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The seed policy as ``ticket-triage.yaml``."""
    path = tmp_path / "ticket-triage.yaml"
    path.write_text(SEED, encoding="utf-8")
    return path


class RequestLog:
    """Records every request a PrometheusClient sends, and answers none of them (503).

    It stays a mock because the tests here prove that bad input sends no request at
    all, which a real server cannot tell.
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(503)


@pytest.fixture
def request_log(monkeypatch: pytest.MonkeyPatch) -> RequestLog:
    """Every PrometheusClient sends through one ``RequestLog``."""
    mock = RequestLog()
    original: Any = PrometheusClient.from_settings.__func__  # type: ignore[attr-defined]

    def patched(cls: type[PrometheusClient], /, settings: Any, **kwargs: Any) -> PrometheusClient:
        kwargs["transport"] = httpx.MockTransport(mock)
        client: PrometheusClient = original(cls, settings, **kwargs)
        return client

    monkeypatch.setattr(PrometheusClient, "from_settings", classmethod(patched))
    return mock


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """``main(argv)``; (exit code, stdout, stderr). argparse's own exits become codes."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# --- version and help ---------------------------------------------------------------------


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"gatectl {__version__}\n", "")


def test_evaluate_help_explains_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "--help")
    assert code == 0
    for line in ("0   promote (or complete)", "10  hold", "20  fallback", "2   invalid input"):
        assert line in out
    assert "1   internal error (a bug)" in out
    assert "GATECTL_PROMETHEUS_URL" in out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("validate", "evaluate", "demo"):
        assert f"    {command}" in out


# --- bad flags: argparse ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["evaluate", "{seed}"],
            "the following arguments are required: --started-at",
            id="missing-started-at",
        ),
        pytest.param(
            ["evaluate", "--started-at", "-1h"],
            "the following arguments are required: PATH",
            id="missing-path",
        ),
        pytest.param(
            ["evaluate", "{seed}", "--started-at", "-1h", "--output", "xml"],
            "argument --output/-o: invalid choice: 'xml'",
            id="unknown-output-format",
        ),
        pytest.param(
            ["evaluate", "{seed}", "--started-at", "-1h", "--step", "two"],
            "argument --step: expected a whole number, got 'two'",
            id="step-not-a-number",
        ),
        pytest.param(
            ["evaluate", "{seed}", "--started-at", "-1h", "--step", "1", "--current-share", "0.1"],
            "argument --current-share: not allowed with argument --step",
            id="step-and-share-together",
        ),
        pytest.param(
            ["evaluate", "{seed}", "--started-at", "-1h", "--bogus"],
            "unrecognized arguments: --bogus",
            id="unknown-flag",
        ),
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
    ],
)
def test_bad_flags_exit_2_with_one_error_line_and_no_traceback(
    capsys: pytest.CaptureFixture[str], seed: Path, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *(a.replace("{seed}", str(seed)) for a in argv))
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1
    assert message in errors[0]
    assert err.splitlines()[-1] == errors[0]


# --- bad values: gatectl's own usage errors ----------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--started-at", "2026-11-20T13:00:00Z", "--at", AT],
            f"--started-at 2026-11-20T13:00:00Z is after the evaluation instant (--at {AT})",
            id="started-after-at",
        ),
        pytest.param(
            ["--started-at", "+1h", "--at", AT],
            f"--started-at +1h is after the evaluation instant (--at {AT})",
            id="relative-start-in-the-future",
        ),
        pytest.param(
            ["--started-at", STARTED, "--step", "3"],
            "--step 3: gate ticket-triage has 2 steps (0.1, 1)",
            id="step-above-range",
        ),
        pytest.param(
            ["--started-at", STARTED, "--step", "0"],
            "--step 0: gate ticket-triage has 2 steps (0.1, 1)",
            id="step-zero",
        ),
        pytest.param(
            ["--started-at", STARTED, "--current-share", "0.3"],
            "--current-share 0.3 is not a step of gate ticket-triage (steps: 0.1, 1)",
            id="share-not-a-step",
        ),
        pytest.param(
            ["--started-at", STARTED, "--inconclusive-count", "-1"],
            "--inconclusive-count must be >= 0",
            id="negative-inconclusive-count",
        ),
        pytest.param(
            ["--started-at", "yesterday"],
            "--started-at: expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h),"
            " got 'yesterday'",
            id="unparseable-time",
        ),
        pytest.param(
            ["--started-at", "2026-11-20T10:00:00"],
            "--started-at: time '2026-11-20T10:00:00' has no time zone: add Z or an offset"
            " like +00:00",
            id="time-without-zone",
        ),
    ],
)
def test_bad_values_exit_2_with_exactly_one_line(
    capsys: pytest.CaptureFixture[str],
    seed: Path,
    request_log: RequestLog,
    flags: list[str],
    message: str,
) -> None:
    code, out, err = run(
        capsys, "evaluate", seed, "--prometheus-url", "http://prom.test:9090", *flags
    )
    assert (code, out, err) == (2, "", f"gatectl: error: {message}\n")
    assert request_log.requests == []  # nothing was queried


def test_no_prometheus_url_anywhere_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], seed: Path
) -> None:
    code, out, err = run(capsys, "evaluate", seed, "--started-at", "-1h")
    assert (code, out) == (2, "")
    assert err == (
        "gatectl: error: no Prometheus URL: pass --prometheus-url, set GATECTL_PROMETHEUS_URL"
        " or prometheus.url in the policy\n"
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://prom.test", id="wrong-scheme"),
        pytest.param("prom.test:9090", id="no-scheme"),
    ],
)
def test_invalid_prometheus_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], seed: Path, url: str
) -> None:
    code, out, err = run(capsys, "evaluate", seed, "--started-at", "-1h", "--prometheus-url", url)
    assert (code, out) == (2, "")
    assert err.startswith(f"gatectl: error: invalid Prometheus URL {url!r}")
    assert err.count("\n") == 1


# --- bad policies -----------------------------------------------------------------------------

_BAD_POLICIES = [
    pytest.param(
        SEED.replace("canary_traffic: 0.10", "canary_traffic: 1.5"),
        "{path}:2: workflow_release_gate.canary_traffic: must be > 0 and <= 1, got 1.5",
        id="share-above-one",
    ),
    pytest.param(
        SEED.replace('exception_rate: "<= 0.04"', 'exception_rate: "<== 0.04"'),
        "{path}:5: workflow_release_gate.success_criteria.exception_rate: cannot parse"
        " condition '<== 0.04'",
        id="bad-condition",
    ),
    pytest.param(
        SEED.replace("  fallback_mode: deterministic_path\n", "  fallback_mod: x\n"),
        "{path}:12: workflow_release_gate.fallback_mod: unknown field",
        id="unknown-field",
    ),
    pytest.param(
        "workflow_release_gate:\n  canary_traffic: [0.1\n",
        "{path}:3: invalid YAML",
        id="broken-yaml",
    ),
]


@pytest.mark.parametrize(("text", "message"), _BAD_POLICIES)
def test_bad_policy_on_evaluate_exits_2_with_file_line_and_field(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    request_log: RequestLog,
    text: str,
    message: str,
) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run(
        capsys, "evaluate", path, "--started-at", "-1h", "--prometheus-url", "http://prom.test"
    )
    assert (code, out) == (2, "")
    assert err.startswith("gatectl: " + message.format(path=path))
    assert err.count("\n") == 1
    assert request_log.requests == []


@pytest.mark.parametrize(("text", "message"), _BAD_POLICIES)
def test_bad_policy_on_validate_exits_2_and_counts_the_problems(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "validate", path)
    lines = err.splitlines()
    assert (code, out) == (2, "")
    assert lines[0].startswith(message.format(path=path))
    assert lines[-1] == f"{len(lines) - 1} problem(s)"
    assert "Traceback" not in err


def test_missing_policy_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    code, out, err = run(
        capsys, "evaluate", path, "--started-at", "-1h", "--prometheus-url", "http://prom.test"
    )
    assert (code, out, err) == (2, "", f"gatectl: {path}: file not found\n")


def test_valid_policy_validates(capsys: pytest.CaptureFixture[str], seed: Path) -> None:
    assert run(capsys, "validate", seed) == (0, "ok: 1 gate(s) valid\n", "")


# --- a bug -------------------------------------------------------------------------------------


def test_internal_error_exits_1_without_a_traceback(
    capsys: pytest.CaptureFixture[str], seed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gatectl.engine.evaluate

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gatectl.engine.evaluate, "evaluate_gates", broken)
    code, out, err = run(
        capsys, "evaluate", seed, "--started-at", "-1h", "--prometheus-url", "http://p"
    )
    assert (code, out) == (1, "")
    assert "internal error (a bug, please report it): RuntimeError: boom" in err
    assert "Traceback" not in err
