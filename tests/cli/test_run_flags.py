"""``gatectl run``'s header flags: a bad one is a usage error that never echoes its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatectl.cli import main


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(
            "Bearer s3cret-token",
            "gatectl: error: --prometheus-header #1: expected 'Name: value' (not shown)",
            id="no-colon",
        ),
        pytest.param(
            "Authorization: Bearer s3cret\u00e9",
            "gatectl: error: --prometheus-header #1: header 'Authorization': the value must be"
            " printable ASCII (no line breaks, control or non-ASCII characters)",
            id="non-ascii",
        ),
    ],
)
def test_a_bad_header_flag_is_exit_2_and_never_shows_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, message: str
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    code = main(
        [
            "run",
            "--policies",
            str(policies),
            "--state-file",
            str(tmp_path / "state"),
            "--once",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--prometheus-header",
            header,
        ]
    )

    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "s3cret" not in err
