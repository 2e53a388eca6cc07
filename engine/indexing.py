"""The indexing use case: bring the store in line with a folder, or with a few files.

A run scans (``stat`` only), plans against what the store holds (``engine.plan``, pure),
applies the plan (``engine.indexer``, idempotent and safe to kill at any line), then brings
the mirror up to date. One run at a time per process; an upload holds the same lock from
before it writes its files until they are indexed (``writing``), so a reindex never sees a
file that is about to be rolled back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BadInput, Busy, NotFound
from engine.folder import IMAGE_SUFFIXES, FileStat, PathKeys, scan
from engine.indexer import Embed, Indexer, IndexReport, Progress
from engine.plan import Current, plan_index
from store.base import Filter, Record

if TYPE_CHECKING:
    from store.base import Store

log = logging.getLogger(__name__)

NOT_AN_IMAGE_NAME = "the file name does not end in an image suffix (.jpg, .png, .tif, ...)"
UNNAMED = "the file name is not valid UTF-8, so it cannot be stored; rename the file"


class Indexing:
    def __init__(
        self,
        store: Callable[[], Store],
        keys: PathKeys,
        library_dir: Path,
        embed: Embed,
        vector_tags: Callable[[], list[str]],
        sync_mirror: Callable[..., Any],
        require_store: Callable[[], None],
        keep_features: Callable[[str, Any], None] | None = None,
    ) -> None:
        self._store = store
        self._keep_features = keep_features
        self.keys = keys
        self._library_dir = library_dir
        self._embed = embed
        self._vector_tags = vector_tags
        self._sync_mirror = sync_mirror
        self._require_store = require_store
        # Re-entrant: an upload holds it from before it writes its files until they are
        # indexed, and indexes them while holding it.
        self._lock = threading.RLock()

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index lock, waiting at most ``timeout`` seconds for a running index to
        finish (then ``Busy``). Refuses at once while the store is known to be down, so a
        write fails before it has touched the library folder."""
        self._require_store()
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Busy(
                f"The library is being re-indexed and stayed busy for {timeout:.0f} s; "
                "try again when the reindex job has finished."
            )
        try:
            yield
        finally:
            self._lock.release()

    def library_folder(self, sub: str) -> Path:
        """A folder of the library by its relative name, checked before a job starts: a
        name that leaves the library or does not exist is refused now, not by a job that
        fails a moment later."""
        library = self._library_dir.resolve()
        try:
            folder = (library / sub.strip("/")).resolve()
        except (ValueError, OSError):  # a NUL byte, a name too long: no such folder can exist
            raise BadInput(f"The folder {sub!r} is not a folder of the library.") from None
        if not folder.is_relative_to(library):
            raise BadInput(f"The folder {sub!r} is not inside the library.")
        if not _is_dir(folder):
            raise NotFound(f"The library has no folder {sub!r}.")
        return folder

    def index(
        self,
        folder: Path | None = None,
        *,
        tags: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index a folder (default: the library): new and changed files are embedded,
        deleted ones dropped, unchanged ones never opened."""
        folder = (folder or self._library_dir).resolve()
        if not folder.is_dir():
            raise BadInput(f"{folder} is not a folder.")
        scope = self.keys.scope(folder)
        # Scan under the lock too: a file an upload writes between this scan and the plan
        # would otherwise look deleted, and its fresh point would be dropped.
        with self._lock:
            desired = scan(folder, self.keys)

            def in_scope(key: str) -> bool:
                # Files of folders outside the library are keyed by absolute path: the
                # library's own scope ('') must not claim them, or indexing the library
                # would delete what `lookalike index /elsewhere` added.
                return key.startswith(scope) and (bool(scope) or key[:1] != "/" or key in desired)

            return self._run(desired, in_scope, tags, progress)

    def index_files(
        self, paths: Sequence[Path], *, tags: Sequence[str] = (), progress: Progress | None = None
    ) -> IndexReport:
        """Index exactly these files (uploads), leaving the rest of the library alone. A
        file whose name does not end in an image suffix is refused, as a folder scan skips
        it: whatever it holds, the library never serves a file named 'x.html'."""
        desired = {}
        misnamed = []
        for p in paths:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                misnamed.append(self.keys.key(p))
                continue
            st = p.stat()
            desired[self.keys.key(p)] = FileStat(st.st_size, st.st_mtime_ns)
        report = self._run(desired, desired.__contains__, tags, progress, only=list(desired))
        report.scanned += len(misnamed)
        report.failed += [(key, NOT_AN_IMAGE_NAME) for key in misnamed]
        return report

    def unindex_files(self, paths: Sequence[Path]) -> IndexReport:
        """Drop these files' claims (an upload rolled back after its files were removed)."""
        keys = {self.keys.key(p) for p in paths}
        return self._run({}, keys.__contains__, (), None, only=sorted(keys))

    def _run(
        self,
        desired: dict[str, FileStat],
        in_scope: Callable[[str], bool],
        tags: Sequence[str],
        progress: Progress | None,
        *,
        only: Sequence[str] | None = None,
    ) -> IndexReport:
        """``only``: the run concerns just these keys (uploads), so only the points listing
        them are read, not the whole store (0.6-1.1 s a call at 100k points)."""
        # A file name that is not valid UTF-8 cannot be written in a payload (JSON): one
        # such file used to abort the whole run. Skip it and say so instead.
        unnamed = [key for key in desired if not _storable(key)]
        desired = {k: v for k, v in desired.items() if k not in unnamed} if unnamed else desired
        with self._lock:
            store = self._store()
            fields = ["files", "vectors", "tags"]
            if only is None:
                points: Iterable[Record] = store.scroll(with_payload=fields)
            else:
                keys = [k for k in only if _storable(k)]
                points = store.scroll(Filter(paths=keys), with_payload=fields) if keys else ()
            current = Current.from_payloads(((r.id, r.payload) for r in points), in_scope)
            plan = plan_index(current, desired, self._vector_tags(), tags)
            log.info("index plan: %s", plan.summary())
            indexer = Indexer(
                store=store,
                keys=self.keys,
                embed=self._embed,
                vector_tags=self._vector_tags,
                tags=tuple(tags),
                progress=progress,
                keep_features=self._keep_features,
            )
            report = indexer.apply(plan, desired)
            report.scanned += len(unnamed)
            report.failed += [(_printable(k), UNNAMED) for k in unnamed]
            if not plan.is_empty:
                self._sync_mirror(removed=indexer.deleted_ids)
            return report


def _storable(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def _printable(key: str) -> str:
    """The name's original bytes, the undecodable ones written as escapes (\\xe9)."""
    return os.fsencode(key).decode("utf-8", "backslashreplace")


def _is_dir(path: Path) -> bool:
    """``Path.is_dir`` without its one surprise: a name part over the file system's limit
    (255 bytes) raises ENAMETOOLONG instead of answering False. No such folder exists."""
    try:
        return path.is_dir()
    except OSError:
        return False
