"""Pure planning of an index run: what the store holds versus what the folder holds.

``plan_index(current, desired, ...)`` does no I/O, so it is cheap to test exhaustively; the
side effects live in ``engine.indexer.Indexer.apply``, which is idempotent and safe to kill at
any point (see the notes there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.folder import FileStat


@dataclass(frozen=True)
class StoredFile:
    point_id: str
    size: int
    mtime_ns: int


@dataclass
class Current:
    """What the store says, restricted to the scope being indexed."""

    files: dict[str, list[StoredFile]] = field(default_factory=dict)  # key -> claims
    point_vectors: dict[str, set[str]] = field(default_factory=dict)  # id -> vector tags
    point_tags: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_payloads(
        cls, points: Iterable[tuple[str, Mapping[str, Any]]], in_scope: Callable[[str], bool]
    ) -> Current:
        cur = cls()
        for pid, payload in points:
            cur.point_vectors[pid] = set(payload.get("vectors") or ())
            cur.point_tags[pid] = set(payload.get("tags") or ())
            for f in payload.get("files") or ():
                key = f["path"]
                if in_scope(key):
                    claim = StoredFile(pid, int(f["size"]), int(f["mtime_ns"]))
                    cur.files.setdefault(key, []).append(claim)
        return cur


@dataclass
class Plan:
    unchanged: dict[str, str] = field(default_factory=dict)  # key -> point id
    to_hash: list[str] = field(default_factory=list)  # new, changed or contested keys
    # keys no longer on disk, by the point that lists them
    removed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # claims that must be dropped once the hashed content is known: key -> point ids
    stale_claims: dict[str, set[str]] = field(default_factory=dict)
    reembed: dict[str, str] = field(default_factory=dict)  # point id -> a key to read
    retag: list[str] = field(default_factory=list)  # point ids missing the run's tags

    @property
    def is_empty(self) -> bool:
        return not (self.to_hash or self.removed or self.reembed or self.retag)

    def summary(self) -> dict[str, int]:
        return {
            "unchanged": len(self.unchanged),
            "to_hash": len(self.to_hash),
            "removed": sum(len(v) for v in self.removed.values()),
            "reembed": len(self.reembed),
            "retag": len(self.retag),
        }


def plan_index(
    current: Current,
    desired: Mapping[str, FileStat],
    required_vectors: Iterable[str],
    tags: Iterable[str] = (),
) -> Plan:
    """A file is unchanged when exactly one point claims it with the same size and mtime;
    it is then never opened. Anything else (new, moved size/mtime, claimed twice after an
    interrupted run) is hashed, and the hash decides which point it belongs to."""
    plan = Plan()
    required = set(required_vectors)
    wanted_tags = set(tags)

    for key, stat in desired.items():
        claims = current.files.get(key, [])
        if len(claims) == 1 and claims[0].size == stat.size and claims[0].mtime_ns == stat.mtime_ns:
            plan.unchanged[key] = claims[0].point_id
        else:
            plan.to_hash.append(key)
            if claims:
                plan.stale_claims[key] = {c.point_id for c in claims}

    for key, claims in current.files.items():
        if key not in desired:
            for c in claims:
                plan.removed[c.point_id].add(key)

    for key, pid in plan.unchanged.items():
        if not required <= current.point_vectors.get(pid, set()) and pid not in plan.reembed:
            plan.reembed[pid] = key
        if wanted_tags and not wanted_tags <= current.point_tags.get(pid, set()):
            plan.retag.append(pid)

    plan.to_hash.sort()
    plan.retag = sorted(set(plan.retag))
    plan.removed = dict(plan.removed)
    return plan
