"""Fail when two of Lookalike's modules import each other, directly or around a ring.

import-linter checks the layers; this checks what layers cannot see: a cycle inside one
package (``store.mirror`` <-> its sync module, say). Imports under ``if TYPE_CHECKING:``
count too: a ring of them still means the modules cannot be understood one at a time.
Run by ``make lint``; ``tests/unit/test_architecture.py`` runs it on a broken tree.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grimp

PACKAGES = ("api", "cli", "engine", "embedder", "store", "migrations", "common")


def find_cycles(packages: Sequence[str] = PACKAGES) -> list[list[str]]:
    """Every import cycle, each as a chain ``a -> b -> ... -> a``, shortest first, one per
    pair of modules that close it."""
    # No cache: a stale one (it lives in .grimp_cache) reported a cycle already fixed.
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    cycles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                key = frozenset(back)
                cycles.setdefault(key, [importer, *back])
    return sorted(cycles.values(), key=len)


def main(argv: Sequence[str] | None = None) -> int:
    packages = tuple(argv) if argv else PACKAGES
    cycles = find_cycles(packages)
    for chain in cycles:
        print("import cycle: " + " -> ".join(chain), file=sys.stderr)
    if cycles:
        print(f"{len(cycles)} import cycle(s) among {', '.join(packages)}", file=sys.stderr)
        return 1
    print(f"no import cycles among {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
