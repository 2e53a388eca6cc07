"""Default fusion weights and near-duplicate threshold per set of active models.

Both are measured, not guessed: ``python -m bench.quality --write-calibration`` chooses them
on the quality benchmark (bench/QUALITY.md) and writes calibration.json beside this module;
``--calibrate-on DIR`` does the same on a studio's own originals and copies. A set of models
is keyed by its model names in role order, e.g. 'effnet-lite0+hsv-8x8x8': weights tuned for
one CNN mean nothing for another, nor does a threshold, so the key is never the roles alone.

For a set the file does not know, weights are equal (the engine's historical default) and the
threshold is None: the caller must not show a "near-duplicate" badge it cannot back with a
measured precision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from embedder.roles import ROLES

log = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


def set_key(models: Mapping[str, str]) -> str:
    """{role: model name} -> 'name+name' in role order (the key in calibration.json)."""
    return "+".join(models[r] for r in ROLES if r in models)


@lru_cache(maxsize=8)
def load_calibration(path: Path = CALIBRATION_FILE) -> dict[str, Any]:
    """The parsed file; an empty calibration (with a warning) if it is missing or broken,
    so a bad file degrades search defaults instead of stopping the server."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("calibration file %s unreadable (%s): using equal weights", path, exc)
        return {"sets": {}}
    sets = doc.get("sets") if isinstance(doc, dict) else None
    if not isinstance(sets, dict):
        log.warning("calibration file %s has no 'sets': using equal weights", path)
        return {"sets": {}}
    return doc


def _find(active: Mapping[str, str] | Iterable[str], sets: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(active, Mapping):
        found = sets.get(set_key(active))
        return found if isinstance(found, dict) else None
    # Roles only: unambiguous only when exactly one calibrated set has these roles.
    roles = set(active)
    matches = [s for s in sets.values() if isinstance(s, dict) and set(s.get("roles", {})) == roles]
    return matches[0] if len(matches) == 1 else None


def defaults_for(
    active_roles: Mapping[str, str] | Iterable[str], *, path: Path = CALIBRATION_FILE
) -> tuple[dict[str, float], float | None]:
    """(weights by role, near-duplicate threshold) for the active models.

    ``active_roles`` is best given as {role: model name}, as ``ModelCatalog.names()``
    yields (e.g. {'cnn': 'effnet-lite0', 'hsv': 'hsv-8x8x8'}); a plain collection of roles
    works when only one calibrated set has those roles. The threshold applies to the fused
    score sum(w_i * cos_i) / sum(w_i) with exactly these weights; None when uncalibrated.
    """
    roles = list(active_roles.keys() if isinstance(active_roles, Mapping) else active_roles)
    found = _find(active_roles, load_calibration(path)["sets"])
    if found is None:
        return dict.fromkeys(roles, 1.0), None
    weights = found.get("weights") or {}
    out = {r: float(weights.get(r, 0.0)) for r in roles}
    if not any(out.values()):  # a malformed entry must not zero every model
        return dict.fromkeys(roles, 1.0), None
    threshold = found.get("near_duplicate_threshold")
    return out, float(threshold) if isinstance(threshold, int | float) else None
