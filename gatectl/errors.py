"""Every exception gatectl raises on purpose.

A user never sees a traceback for bad input: the CLI turns each of these into
a one-line message and an exit code. Anything that is not a ``GatectlError``
is a bug and is reported as one (exit 1).

```
GatectlError
├── PolicyError          bad input: file, line, column, field path
├── UsageError           bad command-line flags or values
├── QueryError           Prometheus unreachable, bad response, no data
└── ClusterError         Kubernetes API failures
    ├── ConflictError        409: the object changed since it was read
    ├── NotFoundError        404
    ├── ForbiddenError       401/403
    ├── TooManyRequestsError 429 (carries Retry-After)
    └── ServerError          5xx
```
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ConflictError",
    "ForbiddenError",
    "GatectlError",
    "NotFoundError",
    "PolicyError",
    "QueryError",
    "ServerError",
    "TooManyRequestsError",
    "UsageError",
]


class GatectlError(Exception):
    """Base of every error gatectl raises deliberately."""


class PolicyError(GatectlError):
    """A policy that cannot be loaded: says file, line, column and field path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        """``file:line: field.path: message``, leaving out what is unknown."""
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"


class UsageError(GatectlError):
    """A command line that cannot be run as given (exit code 2)."""


class QueryError(GatectlError):
    """A Prometheus query that gave no usable number; the message is the cause."""


class ClusterError(GatectlError):
    """A Kubernetes API call that failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ConflictError(ClusterError):
    """409 Conflict: the object was changed since it was read."""


class NotFoundError(ClusterError):
    """404 Not Found."""


class ForbiddenError(ClusterError):
    """401 or 403: the service account may not do this."""


class TooManyRequestsError(ClusterError):
    """429 Too Many Requests; ``retry_after`` in seconds when the server said."""

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class ServerError(ClusterError):
    """5xx from the API server."""
