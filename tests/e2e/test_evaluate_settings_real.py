"""Where ``gatectl evaluate`` reads from, and how it prints, against the real Prometheus.

Moved here from ``tests/cli`` (where a mock transport answered with invented
numbers): the flag beats ``GATECTL_PROMETHEUS_URL``, which beats the policy's
``prometheus.url``; the loser is never asked (its URL is a closed port on
127.0.0.1, so asking it would show as a connection error in the evidence);
YAML output is the JSON output in another syntax.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.support import AT, closed_port, rfc3339, write_seed
from gatectl.cli import main

pytestmark = pytest.mark.prometheus

STARTED = rfc3339(AT - timedelta(hours=49))
"""A step that started 49h before AT: the seed's 48h window has passed."""


def evaluate(
    capsys: pytest.CaptureFixture[str], policy: Path, *flags: str, output: str = "json"
) -> tuple[int, Any, str]:
    code = main(
        ["evaluate", str(policy), "--started-at", STARTED, "--at", rfc3339(AT),
         "--output", output, *flags]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "sources",
    [
        pytest.param(("real", None, None), id="flag-alone"),
        pytest.param((None, "real", None), id="environment-alone"),
        pytest.param((None, None, "real"), id="policy-alone"),
        pytest.param(("real", "closed", "closed"), id="flag-beats-environment-and-policy"),
        pytest.param((None, "real", "closed"), id="environment-beats-policy"),
    ],
)
def test_the_flag_beats_the_environment_which_beats_the_policy(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prometheus_url: str,
    policy_dir: Path,
    sources: tuple[str | None, str | None, str | None],
) -> None:
    """``sources``: which server the flag, the environment and the policy name (if any)."""
    flag, environment, in_policy = sources
    closed = f"http://127.0.0.1:{closed_port()}"
    urls = {"real": prometheus_url, "closed": closed, None: None}
    policy = write_seed(policy_dir, "healthy")
    if in_policy is not None:
        text = policy.read_text().replace(
            "workflow_release_gate:\n",
            f"workflow_release_gate:\n  prometheus:\n    url: {urls[in_policy]}\n",
        )
        policy.write_text(text)
    monkeypatch.delenv("GATECTL_PROMETHEUS_URL", raising=False)
    if environment is not None:
        monkeypatch.setenv("GATECTL_PROMETHEUS_URL", str(urls[environment]))
    flags = () if flag is None else ("--prometheus-url", str(urls[flag]))

    code, out, err = evaluate(capsys, policy, *flags)

    body = json.loads(out)
    assert (code, body["decision"], err) == (0, "promote", "")  # read from the real server
    assert closed not in out


def test_yaml_output_carries_the_same_fields_as_json(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    policy = write_seed(policy_dir, "overrides-high")
    json_code, as_json, _ = evaluate(capsys, policy, "--prometheus-url", prometheus_url)
    yaml_code, as_yaml, _ = evaluate(
        capsys, policy, "--prometheus-url", prometheus_url, output="yaml"
    )
    assert json_code == yaml_code == 10
    loaded = json.loads(as_json)
    assert loaded["decision"] == "hold" and loaded["criteria"]
    assert yaml.safe_load(as_yaml) == loaded
