"""Long reports (the near-duplicate report) run one at a time, on their own thread, and stop
when nobody waits for them.

A report compares every image with every other: seconds of every core. Run on the shared
worker pool, a few of them would leave no thread for searches; left running after the client
gave up, a reload loop would pile them up. So ``ReportQueue.run``:

* takes one turn at a time (requests wait their turn, costing nothing while they wait);
* computes on a thread of its own, never one of the search pool's;
* watches the connection: a client that leaves while waiting gives up its turn, and one that
  leaves while its report computes stops it at the next block (``cancelled()`` turns true).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread

from engine.errors import Cancelled

if TYPE_CHECKING:
    from litestar.types import Receive

T = TypeVar("T")

GONE = "The client left before its report was ready."


class ReportQueue:
    def __init__(self) -> None:
        self._turn = anyio.Lock()
        self._thread = anyio.CapacityLimiter(1)
        self.running = 0  # reports computing now (0 or 1), for tests and metrics

    async def run(self, work: Callable[[Callable[[], bool]], T], receive: Receive) -> T:
        """``work(cancelled)`` in its turn; ``Cancelled`` if the client left first."""
        gone = threading.Event()
        done: list[T] = []
        failure: list[BaseException] = []
        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                await _disconnected(receive)
                gone.set()
                tasks.cancel_scope.cancel()  # stop waiting for a turn; a running report
                # is not interrupted here but asks ``gone`` between blocks

            tasks.start_soon(watch)
            async with self._turn:
                self.running += 1
                try:
                    done.append(
                        await anyio.to_thread.run_sync(work, gone.is_set, limiter=self._thread)
                    )
                except Exception as exc:  # raised below, outside the task group
                    failure.append(exc)
                finally:
                    self.running -= 1
            tasks.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if not done:
            raise Cancelled(GONE)
        return done[0]


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has closed the connection (ASGI ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass
