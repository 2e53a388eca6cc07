"""What a search hit shows (paths, filename, size, tags...), kept beside the FAISS mirror.

The mirror holds vectors only, so a search still needs the store for each hit's payload.
While the store (a Qdrant server) is unreachable, this cache answers instead: searches keep
working, marked degraded. It follows the mirror, never leads it:

- ``sync(mirror_revs, fetch)`` drops ids the mirror no longer has and fetches the payloads
  of ids whose rev moved, so after a mirror sync it shows exactly the mirror's points;
- ``put(records)`` refreshes entries from payloads a search retrieved anyway.

It is saved next to the mirror snapshot (msgpack, ``common.atomic``) so that a restart
during an outage still has it. Losing it costs nothing but one fetch of every payload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from common.atomic import atomic_write
from store.base import Filter, Record
from store.filters import matches

log = logging.getLogger(__name__)

# Enough to show a hit and to apply a search's filters (store.filters), nothing heavier.
DISPLAY_FIELDS = (
    "paths",
    "filename",
    "folder",
    "tags",
    "width",
    "height",
    "format",
    "bytes",
    "mtime",
    "added_at",
    "palette",
    "keywords",
    "title",
    "description",
    "dup_review",  # a duplicate group's remembered decision (engine.duplicate_review)
    "rev",
)
FORMAT = 1
FETCH_BATCH = 512


class PayloadCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._items)

    # --- reads ------------------------------------------------------------------------
    def get(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached payloads of those ids that are cached (copies: callers may keep them)."""
        with self._lock:
            return {i: dict(self._items[i]) for i in ids if i in self._items}

    def matching(self, flt: Filter | None) -> list[str]:
        """Ids whose cached payload passes ``flt``, by the store's own filter semantics."""
        with self._lock:
            return [i for i, payload in self._items.items() if matches(flt, i, payload)]

    # --- writes -----------------------------------------------------------------------
    def put(self, records: Iterable[Record]) -> None:
        with self._lock:
            for rec in records:
                shown = _display(rec.payload)
                if self._items.get(rec.id) != shown:
                    self._items[rec.id] = shown
                    self._dirty = True

    def remove(self, ids: Iterable[str]) -> None:
        with self._lock:
            for i in ids:
                if self._items.pop(i, None) is not None:
                    self._dirty = True

    def sync(
        self,
        mirror_revs: Mapping[str, int],
        fetch: Callable[[Sequence[str]], list[Record]],
    ) -> int:
        """Match the mirror: forget what it dropped, fetch what is missing or older than the
        mirror's rev. Returns how many entries changed. ``fetch`` may raise (store down):
        what was done so far stays, and the next sync finishes the job."""
        with self._lock:
            gone = [i for i in self._items if i not in mirror_revs]
            for i in gone:
                del self._items[i]
            stale = [
                i for i, rev in mirror_revs.items() if self._items.get(i, {}).get("rev") != rev
            ]
            self._dirty |= bool(gone)
        for start in range(0, len(stale), FETCH_BATCH):
            self.put(fetch(stale[start : start + FETCH_BATCH]))
        return len(gone) + len(stale)

    # --- persistence --------------------------------------------------------------------
    def save(self) -> None:
        """Write the cache if it changed; a crash mid-way leaves the previous file."""
        with self._lock:
            if not self._dirty:
                return
            body = msgspec.msgpack.encode({"format": FORMAT, "items": self._items})
            self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, body)
        except BaseException:
            with self._lock:
                self._dirty = True  # the next save tries again
            raise

    @classmethod
    def load(cls, path: Path) -> PayloadCache:
        """The saved cache, or an empty one (logged) when missing or unreadable."""
        cache = cls(path)
        try:
            raw = msgspec.msgpack.decode(cache.path.read_bytes())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, want {FORMAT}")
            items = raw["items"]
            if not isinstance(items, dict) or not all(isinstance(v, dict) for v in items.values()):
                raise ValueError("items is not a map of payloads")
            # Saved entries are display payloads already (``put`` filters them).
            cache._items = items
        except FileNotFoundError:
            pass
        except Exception as exc:  # a damaged file is only a cache: start over
            log.warning("payload cache %s not used: %s", cache.path, exc)
        return cache


def _display(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in DISPLAY_FIELDS if k in payload}
