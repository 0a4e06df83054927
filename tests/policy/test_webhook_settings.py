"""A webhook's URL and headers are checked when the policy loads, like Prometheus' are."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatectl.cli import main

POLICY = """\
apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: triage}}
spec:
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria: {{exception_rate: "<= 0.04"}}
  webhook:
{webhook}
"""


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        pytest.param(
            "    url: ftp://hooks.example/x",
            "spec.webhook.url: must be an http:// or https:// URL, got 'ftp://hooks.example/x'",
            id="not-http",
        ),
        pytest.param(
            "    url: alice:s3cret@hooks.example/x",
            "spec.webhook.url: must be an http:// or https:// URL",
            id="password-not-echoed",
        ),
        pytest.param(
            '    url: https://hooks.example/x\n    headers: {"X-Token": "abc\\u00e9"}',
            "spec.webhook.headers: header 'X-Token': the value must be printable ASCII"
            " (no line breaks, control or non-ASCII characters)",
            id="non-ascii-header",
        ),
        pytest.param(
            '    url: https://hooks.example/x\n    headers: {"Bad Name": "v"}',
            "spec.webhook.headers: header name 'Bad Name' is not a valid HTTP header name",
            id="bad-header-name",
        ),
    ],
)
def test_a_bad_webhook_is_a_policy_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], webhook: str, message: str
) -> None:
    policy = tmp_path / "triage.yaml"
    policy.write_text(POLICY.format(webhook=webhook), encoding="utf-8")

    assert main(["validate", str(policy)]) == 2

    err = capsys.readouterr().err
    assert message in err
    assert "s3cret" not in err
    assert "abc" not in err
