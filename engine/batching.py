"""Dynamic batching: concurrent callers share one call of a batch function.

Searches by image each need one forward pass of every model. On a CPU, one pass over eight
images costs less than eight passes over one (bigger matrix products, one trip through the
Python layers instead of eight), and passes never run side by side anyway: they would only
split the same cores. So concurrent queries are embedded together:

- a caller's item waits in a queue; one worker thread takes items off it in batches;
- the first item of a batch waits at most ``max_wait_s`` for companions (a lone query pays
  that much latency, a few ms), or until ``max_batch`` are there;
- items that arrive while a batch is being computed form the next batch with no extra wait,
  so under load batches grow by themselves;
- a caller may announce its item before preparing it (``coming``: a search announces its
  query before decoding the upload). While announced items are on their way, a batch waits
  for them up to ``max_gather_s`` instead of ``max_wait_s``. It also waits, as long, while
  fewer items are queued than shared the previous batch, if that batch ended just now: under
  steady load its callers come back moments later. Otherwise a batch leaves with whoever
  happens to be ready and the rest follow as a batch of one: with 8 clients, batches
  alternated 5 and 1, then 7 and 1.

If the batch function raises, every caller in that batch gets the exception.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    item: T
    arrived: float
    future: Future[R] = field(default_factory=Future)


class Batcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.002,
        max_gather_s: float = 0.06,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or max_gather_s < 0:
            raise ValueError("max_batch must be >= 1, max_wait_s and max_gather_s >= 0")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_gather_s = max(max_gather_s, max_wait_s)
        self._coming = 0  # announced items not submitted yet
        self._last_size = 0  # how many shared the previous batch
        self._name = name
        self._queue: deque[_Slot[T, R]] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent batch sizes, for metrics

    def submit(self, item: T) -> R:
        """``fn([item, ...])``'s result for this item; blocks until it is computed."""
        return self._submit(item, announced=False)

    @contextmanager
    def coming(self) -> Iterator[Callable[[T], R]]:
        """Announce an item that is being prepared; yields its ``submit``. Batches being
        formed wait for it (up to ``max_gather_s``) until it is submitted or the block ends.

            with batcher.coming() as submit:
                result = submit(prepare())
        """
        with self._cond:
            self._coming += 1
        submitted = False

        def submit(item: T) -> R:
            nonlocal submitted
            if submitted:
                raise RuntimeError("an announced item is submitted once")
            submitted = True
            return self._submit(item, announced=True)

        try:
            yield submit
        finally:
            if not submitted:  # preparing it failed: stop waiting for it
                with self._cond:
                    self._coming -= 1
                    self._cond.notify_all()

    def _submit(self, item: T, *, announced: bool) -> R:
        slot: _Slot[T, R] = _Slot(item, time.monotonic())
        with self._cond:
            if announced:
                self._coming -= 1
            if self._closed:
                self._cond.notify_all()
                raise RuntimeError(f"{self._name} is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._worker.start()
            self._queue.append(slot)
            self._cond.notify_all()
        return slot.future.result()

    def close(self) -> None:
        """Finish the queued items, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _next_batch(self) -> list[_Slot[T, R]] | None:
        free_at = time.monotonic()  # the previous batch is done
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue[0].arrived
            # A lone caller waits max_wait_s from its arrival. Gathering counts from when
            # the worker was free: items that queued during the previous batch have waited
            # for it, not for companions.
            gather_until = max(first, free_at) + self.max_gather_s
            # The callers of the last batch may be coming back only if it ended just now.
            expected = self._last_size if first - free_at < self.max_gather_s else 0
            while len(self._queue) < self.max_batch and not self._closed:
                # Someone is on the way, or fewer are here than shared the last batch.
                gather = self._coming > 0 or len(self._queue) < expected
                deadline = gather_until if gather else first + self.max_wait_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self.max_batch, len(self._queue))
            self._last_size = count
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self.batch_sizes.append(len(batch))
            try:
                results = self._fn([slot.item for slot in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"{self._name}: batch function gave {len(results)} results "
                        f"for {len(batch)} items"
                    )
            except BaseException as exc:
                for slot in batch:
                    slot.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # SystemExit and the like end the worker, after waking everyone
                continue
            for slot, result in zip(batch, results, strict=True):
                slot.future.set_result(result)
