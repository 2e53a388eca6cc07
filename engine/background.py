"""Keeps a serving process's mirror in step with the store.

Writes made through this process update the mirror at once. Writes made elsewhere (a CLI
``index`` against the same Qdrant server, another API replica) are picked up here: a cheap
catch-up (points with ``rev`` above the watermark) every ``interval_s``, and a full id
comparison every ``full_every_s`` to catch deletions, which leave no rev behind.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.core import Engine

log = logging.getLogger(__name__)


class MirrorSyncer:
    def __init__(self, engine: Engine, *, interval_s: float = 2.0, full_every_s: float = 300.0):
        self.engine = engine
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed sync rounds, for tests and /metrics

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mirror-sync", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        last_full = time.monotonic()
        while not self._stop.wait(self.interval_s):
            full = time.monotonic() - last_full >= self.full_every_s
            try:
                self.engine.sync_mirror(full=full)
            except Exception as exc:  # store down: the outage logic reports it; retry later
                log.debug("mirror sync skipped: %s", exc)
                continue
            if full:
                last_full = time.monotonic()
            self.runs += 1
