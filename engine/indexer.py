"""Applying an index plan to the store.

Interrupt safety (``kill -9`` at any line) rests on three rules:
  * every store write is one atomic, idempotent call (upsert / set_payload / delete);
  * a new claim on a file is written *before* the stale claim is dropped, so a file is never
    unclaimed; a file briefly claimed by two points is "contested" and re-hashed next run;
  * nothing is remembered outside the store: the next run re-plans from what is there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.folder import FileStat, PathKeys, folder_of, sha256_file
from engine.plan import Plan
from store.base import Record, Store, point_id_for_sha256

if TYPE_CHECKING:
    from embedder.metadata import EmbeddedMetadata

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
UPSERT_BATCH = 32


class EmbedResult(Protocol):
    key: str
    vectors: dict[str, np.ndarray] | None
    width: int
    height: int
    format: str
    palette: list[str]
    metadata: EmbeddedMetadata
    features: Any  # local features for copy verification, or None
    error: Exception | None


class Embed(Protocol):
    """Embeds files by key, overlapping decoding with inference; loads models lazily."""

    def __call__(self, items: Sequence[tuple[str, Path]]) -> Iterable[EmbedResult]: ...


@dataclass
class IndexReport:
    scanned: int = 0
    unchanged: int = 0
    embedded: int = 0
    attached: int = 0  # files whose content was already indexed (duplicates, moves)
    reembedded: int = 0
    removed_files: int = 0
    deleted_points: int = 0
    retagged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    models_loaded: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["failed"] = [{"path": k, "error": r} for k, r in self.failed]
        return d


def path_fields(files: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Payload fields derived from the list of files holding the same content."""
    ordered = sorted(({**f} for f in files), key=lambda f: f["path"])
    paths = [f["path"] for f in ordered]
    return {
        "files": ordered,
        "paths": paths,
        "filename": PurePosixPath(paths[0]).name,
        "folder": sorted({folder_of(p) for p in paths}),
        "bytes": ordered[0]["size"],
        "mtime": ordered[0]["mtime_ns"] / 1e9,
    }


def _file_entry(key: str, stat: FileStat) -> dict[str, Any]:
    return {"path": key, "size": stat.size, "mtime_ns": stat.mtime_ns}


@dataclass
class Indexer:
    store: Store
    keys: PathKeys
    embed: Embed
    vector_tags: Callable[[], list[str]]  # tags of the loaded models ('name@weights')
    tags: Sequence[str] = ()
    progress: Progress | None = None
    report: IndexReport = field(default_factory=IndexReport)
    deleted_ids: set[str] = field(default_factory=set)
    # Keeps a new image's local features (engine.verification), once its point is stored.
    keep_features: Callable[[str, Any], None] | None = None
    _features: dict[str, Any] = field(default_factory=dict)

    def apply(self, plan: Plan, desired: Mapping[str, FileStat]) -> IndexReport:
        self.report.scanned = len(desired)
        self.report.unchanged = len(plan.unchanged)
        self._remove(plan.removed)
        resolved = self._hash_and_store(plan.to_hash, desired)
        self._drop_stale_claims(plan.stale_claims, resolved)
        self._reembed(plan.reembed)
        self._retag(plan.retag)
        return self.report

    # -- steps ------------------------------------------------------------------------
    def _remove(self, removed: Mapping[str, set[str]]) -> None:
        if removed:
            self._detach({pid: set(keys) for pid, keys in removed.items()})
            self.report.removed_files += sum(len(k) for k in removed.values())

    def _hash_and_store(self, to_hash: Sequence[str], desired: Mapping[str, FileStat]) -> dict:
        groups: dict[str, list[str]] = {}
        for i, key in enumerate(to_hash):
            self._tick("hashing", i, len(to_hash))
            try:
                sha = sha256_file(self.keys.path(key))
            except OSError as exc:
                self.report.failed.append((key, f"cannot read file: {exc.strerror or exc}"))
                continue
            groups.setdefault(point_id_for_sha256(sha), []).append(key)
        self._tick("hashing", len(to_hash), len(to_hash))
        resolved = {key: pid for pid, keys in groups.items() for key in keys}

        existing = {r.id: r for r in self.store.retrieve(list(groups))}
        for pid, keys in groups.items():
            if pid in existing:
                self._attach(existing[pid], [_file_entry(k, desired[k]) for k in keys])
        new = {pid: keys for pid, keys in groups.items() if pid not in existing}
        if new:
            self._embed_new(new, desired, resolved)
        return resolved

    def _attach(self, record: Record, entries: list[dict[str, Any]]) -> None:
        old = {f["path"]: f for f in record.payload.get("files") or ()}
        for e in entries:
            old[e["path"]] = e
        fields = path_fields(old.values())
        if self.tags:
            fields["tags"] = sorted(set(record.payload.get("tags") or ()) | set(self.tags))
        self.store.set_payload([record.id], fields)
        self.report.attached += len(entries)

    def _embed_new(
        self, new: Mapping[str, list[str]], desired: Mapping[str, FileStat], resolved: dict
    ) -> None:
        items = [(keys[0], self.keys.path(keys[0])) for keys in new.values()]
        by_first = {keys[0]: (pid, keys) for pid, keys in new.items()}
        pending: list[Record] = []
        done = 0
        for result in self.embed(items):
            self.report.models_loaded = True
            done += 1
            self._tick("embedding", done, len(items))
            pid, keys = by_first[result.key]
            if result.error is not None or result.vectors is None:
                for k in keys:
                    resolved.pop(k, None)
                    self.report.failed.append((k, str(result.error)))
                continue
            pending.append(self._new_record(pid, keys, result, desired))
            self._features[pid] = getattr(result, "features", None)
            if len(pending) >= UPSERT_BATCH:
                self._flush_new(pending)
        self._flush_new(pending)

    def _new_record(
        self, pid: str, keys: list[str], result: EmbedResult, desired: Mapping[str, FileStat]
    ) -> Record:
        payload = path_fields(_file_entry(k, desired[k]) for k in keys)
        words = result.metadata
        payload.update(
            # Keywords already inside the file are tags from the start (embedder.metadata).
            tags=sorted(set(self.tags) | set(words.keywords)),
            **words.payload(),
            width=result.width,
            height=result.height,
            format=result.format,
            palette=list(result.palette),
            added_at=datetime.now(UTC).isoformat(timespec="seconds"),
            vectors=self.vector_tags(),
        )
        return Record(id=pid, payload=payload, vectors=dict(result.vectors or {}))

    def _flush_new(self, pending: list[Record]) -> None:
        if pending:
            self.store.upsert(pending)
            self.report.embedded += sum(len(r.payload["paths"]) for r in pending)
            # After the point: a crash in between leaves a point without features, which
            # reconcile rebuilds; never features without a point.
            for record in pending:
                features = self._features.pop(record.id, None)
                if self.keep_features is not None:
                    self.keep_features(record.id, features)
            pending.clear()

    def _drop_stale_claims(
        self, stale: Mapping[str, set[str]], resolved: Mapping[str, str]
    ) -> None:
        drop: dict[str, set[str]] = {}
        for key, pids in stale.items():
            if key not in resolved:
                continue  # unreadable or undecodable now: keep the old claim until it is
            for pid in pids - {resolved[key]}:
                drop.setdefault(pid, set()).add(key)
        if drop:
            self._detach(drop)

    def _detach(self, drop: Mapping[str, set[str]]) -> None:
        for record in self.store.retrieve(list(drop)):
            remaining = [
                f for f in record.payload.get("files") or () if f["path"] not in drop[record.id]
            ]
            if remaining:
                self.store.set_payload([record.id], path_fields(remaining))
            else:
                self.store.delete([record.id])
                self.deleted_ids.add(record.id)
                self.report.deleted_points += 1

    def _reembed(self, reembed: Mapping[str, str]) -> None:
        if not reembed:
            return
        by_key = {key: pid for pid, key in reembed.items()}
        items = [(key, self.keys.path(key)) for key in by_key]
        batch: list[Record] = []
        for i, result in enumerate(self.embed(items), 1):
            self.report.models_loaded = True
            self._tick("re-embedding", i, len(items))
            if result.error is not None or result.vectors is None:
                self.report.failed.append((result.key, str(result.error)))
                continue
            batch.append(Record(id=by_key[result.key], vectors=dict(result.vectors)))
            if len(batch) >= UPSERT_BATCH or i == len(items):
                self._flush_reembed(batch)
        self._flush_reembed(batch)

    def _flush_reembed(self, batch: list[Record]) -> None:
        if not batch:
            return
        self.store.update_vectors(batch)
        self.store.set_payload([r.id for r in batch], {"vectors": self.vector_tags()})
        self.report.reembedded += len(batch)
        batch.clear()

    def _retag(self, ids: Sequence[str]) -> None:
        for record in self.store.retrieve(list(ids)):
            merged = sorted(set(record.payload.get("tags") or ()) | set(self.tags))
            self.store.set_payload([record.id], {"tags": merged})
            self.report.retagged += 1

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)
