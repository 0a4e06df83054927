"""``gatectl demo``: a local Prometheus, backfilled, and the example policies decided on it.

``localprom`` starts a real Prometheus on 127.0.0.1 (used by the demo and the
tests); ``run`` is the demo itself. Nothing else in gatectl imports this package.
"""

from gatectl.demo.run import run_demo

__all__ = ["run_demo"]
