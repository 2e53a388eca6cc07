"""Ordered, idempotent schema versions of the image collection.

Every migration may run again safely: a crash between applying one and recording it only
means it runs once more next time. What has been applied is recorded in the store itself,
under the meta key ``migrations``, as ``{name: applied_at}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrations import m0001_create_collection, m0002_index_paths, m0003_vector_layout
from store.base import Store, StoreError

META_KEY = "migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Store, dict[str, int]], None]


MIGRATIONS: list[Migration] = [
    Migration("0001_create_collection", m0001_create_collection.apply),
    Migration("0002_index_paths", m0002_index_paths.apply),
    Migration("0003_vector_layout", m0003_vector_layout.apply),
]


def applied(store: Store) -> dict[str, str]:
    """Migrations recorded as applied, with when, oldest first."""
    # The record lives beside the collection (Edge: meta.json; server: a sibling
    # collection). A collection deleted by hand leaves it behind, so it only counts while
    # the collection exists; otherwise everything runs again.
    if not store.exists():
        return {}
    recorded: Any = store.get_meta(META_KEY)
    done = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}
    unknown = set(done) - {m.name for m in MIGRATIONS}
    if unknown:
        raise StoreError(
            f"the store was migrated by a newer Lookalike (unknown migrations: "
            f"{', '.join(sorted(unknown))}); upgrade Lookalike to open it"
        )
    return done


def pending(store: Store) -> list[str]:
    """Names of the migrations not applied yet, in the order they will run."""
    done = applied(store)
    return [m.name for m in MIGRATIONS if m.name not in done]


def apply_pending(store: Store, vectors: dict[str, int]) -> list[str]:
    """Apply what is pending, recording each as it completes; returns the names applied.
    With nothing pending, bring the vector layout to the settings (``Store.reconfigure``).

    ``vectors`` maps every known model identity to its dimension.
    """
    done = applied(store)
    ran: list[str] = []
    for migration in MIGRATIONS:
        if migration.name in done:
            continue
        migration.apply(store, vectors)
        done[migration.name] = datetime.now(UTC).isoformat(timespec="seconds")
        store.set_meta(META_KEY, done)
        ran.append(migration.name)
    if not ran:
        # The layout settings (quantization, on-disk, HNSW) may have changed since 0003
        # ran: what differs is changed in place, and nothing is when nothing differs.
        store.reconfigure()
    return ran
