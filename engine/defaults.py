"""The one source of search defaults: fusion weights, near-duplicate threshold and k limits.

Every way in reads ``SearchDefaults``: the CLI, ``POST /api/v1/search``, the seed-compatible
``POST /search``, the web UI (through ``/api/v1/status``), text search and the duplicates
report. Before this existed the CLI fused with equal weights while the API used the
calibrated ones, and on a held-out copy-detection set the CLI scored mAP 0.94 against 1.00.

The weights and threshold are measured, not chosen by hand: ``engine/calibration.json``,
written by ``python -m bench.quality --write-calibration`` (see ``engine.calibration``), per
set of active models. For a set the file does not know, every model weighs 1 and there is
no near-duplicate threshold: a "near duplicate" badge needs a measured precision behind it.
The duplicates report still needs some threshold to group by; it then uses
``UNCALIBRATED_DUPLICATES_THRESHOLD`` and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from embedder.roles import ROLES
from engine.calibration import CALIBRATION_FILE, defaults_for, set_key

DEFAULT_K = 10
MAX_K = 1000
MAX_WEIGHT = 1000.0  # weights are relative; a bound keeps their sum finite
# The k choices the web UI offers; DEFAULT_K is among them.
K_CHOICES: tuple[int, ...] = (10, 20, 50, 100)
UNCALIBRATED_DUPLICATES_THRESHOLD = 0.90
# The duplicates report's lowest threshold. Below it, unrelated images of one library score
# above it by the thousand (two unrelated photos have a CLIP cosine near 0.5), so the report
# would list everything as one group, after comparing and keeping every pair.
DUPLICATES_MIN_THRESHOLD = 0.5
# At most this many pairs are grouped per report; past it the report stops and says so
# (``truncated``): a threshold that finds more is too low to mean "duplicates".
DUPLICATES_MAX_PAIRS = 100_000
# A duplicate group is an "exact copy" when every member scores at least this with another
# (or the group is one content stored at several paths); below it, "similar".
COPY_THRESHOLD = 0.99


@dataclass(frozen=True)
class SearchDefaults:
    """What a search uses when the caller does not say."""

    weights: dict[str, float]  # role -> weight, for the active models
    # Fused score (with ``weights``) at or above which two images are near duplicates;
    # None when these models are not calibrated.
    near_duplicate_threshold: float | None
    models: dict[str, str] = field(default_factory=dict)  # role -> model name they apply to
    source: str = ""  # where the numbers come from: the calibration file and its set key
    k: int = DEFAULT_K
    max_k: int = MAX_K
    k_choices: tuple[int, ...] = K_CHOICES

    @property
    def calibrated(self) -> bool:
        return self.near_duplicate_threshold is not None

    @property
    def duplicates_threshold(self) -> float:
        """The duplicates report's default grouping threshold."""
        if self.near_duplicate_threshold is None:
            return UNCALIBRATED_DUPLICATES_THRESHOLD
        return self.near_duplicate_threshold

    def fused(self, cosines: Mapping[str, float]) -> float:
        """The default fusion of one hit's per-role cosines: ``sum(w_i cos_i) / sum(w_i)``
        over the roles with a weight (a role without a cosine counts as 0)."""
        total = sum(w for w in self.weights.values() if w > 0)
        if total <= 0:
            return 0.0
        return sum(w * float(cosines.get(r, 0.0)) for r, w in self.weights.items() if w > 0) / total

    def is_near_duplicate(self, cosines: Mapping[str, float]) -> bool:
        """Whether two images are near duplicates by the calibrated fusion, whatever weights
        a user chose to rank with. False when uncalibrated: no badge without a measurement."""
        threshold = self.near_duplicate_threshold
        return threshold is not None and self.fused(cosines) >= threshold - 1e-9

    def as_dict(self) -> dict[str, object]:
        return {
            "weights": dict(self.weights),
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "duplicates_threshold": self.duplicates_threshold,
            "k": self.k,
            "max_k": self.max_k,
            "k_choices": list(self.k_choices),
            "source": self.source,
        }


def search_defaults(models: Mapping[str, str], *, path: Path = CALIBRATION_FILE) -> SearchDefaults:
    """The defaults for the active models, ``{role: model name}`` (e.g. ``{'cnn':
    'effnet-lite0', 'hsv': 'hsv-8x8x8'}``)."""
    ordered = {r: models[r] for r in ROLES if r in models}
    weights, threshold = defaults_for(ordered, path=path)
    key = set_key(ordered)
    source = f"{path.name} [{key}]" if threshold is not None else f"uncalibrated [{key}]"
    return SearchDefaults(
        weights=weights, near_duplicate_threshold=threshold, models=ordered, source=source
    )
