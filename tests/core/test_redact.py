"""``redact_url``: no user info of a URL survives into a message, whatever its shape."""

from __future__ import annotations

import pytest

from gatectl.core.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("http://prom:9090", "http://prom:9090", id="no-user-info"),
        pytest.param("https://prom/tenant-a/", "https://prom/tenant-a/", id="path-kept"),
        pytest.param(
            "http://alice:hunter2@prom:9090/x?y=1", "http://***@prom:9090/x?y=1", id="user-password"
        ),
        pytest.param("http://token@prom", "http://***@prom", id="user-only"),
        pytest.param("http://:hunter2@prom", "http://***@prom", id="password-only"),
        pytest.param("http://a:p@ss@prom", "http://***@prom", id="at-sign-in-password"),
        pytest.param("http://a:p/ss@prom", "http://***@prom", id="slash-in-password"),
        pytest.param("http://a:p?ss@prom", "http://***@prom", id="question-mark-in-password"),
        pytest.param("http://a:p%40ss@prom", "http://***@prom", id="encoded-at"),
        pytest.param("alice:hunter2@prom:9090", "***@prom:9090", id="no-scheme"),
        pytest.param("HTTPS://u:p@prom", "HTTPS://***@prom", id="upper-case-scheme"),
        pytest.param("", "", id="empty"),
    ],
)
def test_user_info_is_replaced(url: str, shown: str) -> None:
    assert redact_url(url) == shown
