"""A watched library: new and changed files are indexed, deleted ones dropped, within
seconds of the change (``LOOKALIKE_WATCH=true`` in a server, or ``lookalike watch``).

File events come from ``watchfiles`` (inotify on Linux, polling where events do not exist).
Bursts are debounced, and a file is indexed only once it has settled: no event for
``settle_s`` and the same size and mtime at two looks, so a file still being copied (a
large TIFF over the network) waits instead of failing as a truncated image. Only the paths
that changed are indexed (``Indexing.index_files``), never the whole library, so a copy of
1,000 files costs 1,000 embeddings and nothing more.

Events can be missed (a network mount, a folder moved in or out at once, the watcher
restarting), so a full reconcile still runs every ``reconcile_every_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.folder import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from engine.indexer import IndexReport
    from engine.indexing import Indexing

log = logging.getLogger(__name__)

SETTLE_S = 1.0
DEBOUNCE_MS = 400
TICK_MS = 250  # how often the loop looks at pending files while no event comes


class LibraryWatcher:
    def __init__(
        self,
        indexing: Indexing,
        folder: Path,
        *,
        settle_s: float = SETTLE_S,
        reconcile: Callable[[], Any] | None = None,
        reconcile_every_s: float = 0.0,
        on_report: Callable[[IndexReport], None] | None = None,
    ) -> None:
        self._indexing = indexing
        self._folder = folder.resolve()
        self._settle_s = settle_s
        self._reconcile = reconcile
        self._reconcile_every_s = reconcile_every_s
        self._on_report = on_report
        # path -> (time of its last event, (size, mtime) at the last look or None)
        self._pending: dict[Path, tuple[float, tuple[int, int] | None]] = {}
        self._folders: set[Path] = set()  # folders that appeared or vanished as a whole
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0  # index calls made, for tests and logs

    # -- running --------------------------------------------------------------------------
    def start(self) -> None:
        """Watch in a background thread (a server)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="library-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Watch until ``stop`` (blocking: the CLI's ``lookalike watch``)."""
        import watchfiles

        last_reconcile = time.monotonic()
        for changes in watchfiles.watch(
            self._folder,
            watch_filter=self._wanted,
            debounce=DEBOUNCE_MS,
            rust_timeout=TICK_MS,
            yield_on_timeout=True,
            stop_event=self._stop,
            raise_interrupt=False,
        ):
            now = time.monotonic()
            for _, raw in changes:
                self._noted(Path(raw), now)
            self._flush(now)
            if (
                self._reconcile is not None
                and self._reconcile_every_s > 0
                and now - last_reconcile >= self._reconcile_every_s
            ):
                last_reconcile = now
                self._safely("reconcile", self._reconcile)

    # -- what changed ------------------------------------------------------------------------
    def _wanted(self, _change: Any, raw: str) -> bool:
        """Hidden files and folders (an upload's temporary file, .DS_Store) are never ours."""
        try:
            parts = Path(raw).relative_to(self._folder).parts
        except ValueError:
            return False
        return bool(parts) and not any(p.startswith(".") for p in parts)

    def _noted(self, path: Path, now: float) -> None:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            self._pending[path] = (now, None)
        elif path.is_dir() or not path.suffix:
            # A folder moved in (one event for the folder, none for its files) or out (the
            # same): index that folder's scope as a whole.
            self._folders.add(path)

    def _settled(self, now: float) -> tuple[list[Path], list[Path]]:
        """(files ready to index, files gone) among the pending ones."""
        ready: list[Path] = []
        gone: list[Path] = []
        for path, (last_event, seen) in list(self._pending.items()):
            if now - last_event < self._settle_s:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                gone.append(path)
                del self._pending[path]
                continue
            except OSError:
                continue  # unreadable for now: look again at the next tick
            current = (st.st_size, st.st_mtime_ns)
            if seen == current:
                ready.append(path)
                del self._pending[path]
            else:  # still growing, or first look: look again once more
                self._pending[path] = (last_event, current)
        return ready, gone

    def _flush(self, now: float) -> None:
        ready, gone = self._settled(now)
        folders, self._folders = self._folders, set()
        if gone:
            self._index("unindex", lambda: self._indexing.unindex_files(gone))
        if ready:
            self._index("index", lambda: self._indexing.index_files(ready))
        for folder in sorted(folders):
            # Gone: its parent's scope drops what it held. Arrived: index it as a folder.
            scope = folder if folder.is_dir() else folder.parent
            while not scope.is_dir():
                scope = scope.parent
            if scope.resolve().is_relative_to(self._folder):
                self._index("index", partial(self._indexing.index, scope))

    def _index(self, what: str, call: Callable[[], IndexReport]) -> None:
        report = self._safely(what, call)
        if report is None:
            return
        self.batches += 1
        if report.failed:
            for key, reason in report.failed:
                log.warning("watch: skipped %s: %s", key, reason)
        if self._on_report is not None:
            self._on_report(report)

    def _safely(self, what: str, call: Callable[[], Any]) -> Any:
        # The watcher outlives any one failure (the store down, a file vanishing between the
        # look and the read): what was missed is picked up by the next event or reconcile.
        try:
            return call()
        except Exception as exc:
            log.warning("watch: %s failed (%s); the next change or reconcile retries", what, exc)
            return None
