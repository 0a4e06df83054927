"""Who is calling: the authenticated username, from the API server (SelfSubjectReview).

``gatectl approve|reset|fallback`` on Kubernetes record who acted. A free-text
name proves nothing, so the CLI asks the API server who its credentials belong
to (``authentication.k8s.io/v1`` SelfSubjectReview, GA since Kubernetes 1.28)
and writes that name. The chart's ValidatingAdmissionPolicy then rejects an
annotation naming anyone but the requester, so a hand-written one cannot lie
either.
"""

from __future__ import annotations

from typing import Any

from gatectl.errors import ClusterError

from .client import SELFSUBJECTREVIEWS, Resources

__all__ = ["whoami"]


def whoami(api: Any) -> str:
    """The username the API server authenticated ``api``'s credentials as."""
    review = Resources(api, SELFSUBJECTREVIEWS).create(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    username = ((review.get("status") or {}).get("userInfo") or {}).get("username")
    if not isinstance(username, str) or not username:
        raise ClusterError("the API server did not say who these credentials belong to")
    return username
