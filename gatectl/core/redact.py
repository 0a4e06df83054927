"""Secrets out of what gatectl prints: a URL's user info never reaches any output.

A Prometheus URL may carry credentials (``http://user:password@host``). Every
place that renders such a URL into a message — evidence, errors, logs, status,
replay — shows :func:`redact_url` of it instead. The function is pure (no URL
library: the core does no I/O and imports none) and errs on the side of hiding:
everything between ``scheme://`` and the last ``@`` is replaced, so a password
holding ``/``, ``?`` or ``#`` unencoded (which a parser would split elsewhere)
is hidden too.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_url"]

REDACTED = "***"
"""What stands in for the user info of a URL."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(url: str) -> str:
    """``url`` with any user info (``user:password@``) replaced by ``***@``.

    ``http://alice:s3cret@prom:9090/x`` becomes ``http://***@prom:9090/x``; a
    URL without ``@`` is returned unchanged. Without a scheme, the user info
    is taken to start the string (``alice:s3cret@prom`` → ``***@prom``).
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at == -1:
        return url
    return f"{url[:start]}{REDACTED}@{url[at + 1 :]}"
