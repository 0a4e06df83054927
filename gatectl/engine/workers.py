"""Where a store's blocking calls run: inline, or on a bounded pool of threads.

A controller pass is one asyncio task. Kubernetes writes (status, Events,
traffic patches) are synchronous HTTP; made inline, a pass of 1,000 gates
waits on the API server one request after another, and one gate whose
write hangs until its timeout stops every gate after it. ``WorkerPool``
runs them on ``size`` threads instead: the controller computes every
decision on the event loop and awaits each gate's writes, in order within
the gate, while the gates' writes go in parallel. A gate whose write hangs
holds one worker; the others go on.

Concurrency is a property of the store (``Store.io`` when it has one):
the Kubernetes store has a pool; the file store (a SQLite connection bound
to its thread) has none and runs ``Inline``, exactly as before.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

__all__ = ["DEFAULT_WORKERS", "INLINE", "Inline", "Runner", "WorkerPool", "runner_of"]

T = TypeVar("T")

DEFAULT_WORKERS = 8


class Runner(Protocol):
    """Runs a blocking call for the event loop."""

    concurrent: bool
    """True when calls run beside each other (gates are then processed concurrently)."""

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``'s result (or its exception)."""
        ...


class Inline:
    """Runs the call right here, on the event loop's thread (file mode)."""

    concurrent = False

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return call(*args, **kwargs)


INLINE = Inline()


class WorkerPool:
    """``size`` threads; calls beyond them queue until one is free."""

    concurrent = True

    def __init__(self, size: int = DEFAULT_WORKERS, *, name: str = "kube-io") -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def close(self) -> None:
        """Wait for the calls already started; take no more."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def runner_of(store: object) -> Runner:
    """The store's runner (``store.io``), else ``INLINE``."""
    io = getattr(store, "io", None)
    return io if io is not None else INLINE
