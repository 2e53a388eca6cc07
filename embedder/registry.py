"""The one registry: model identity name -> class, and how a configuration becomes models.

Weight resolution, per role, in ROLES order (clip, cnn, hsv):
  * each backbone loads its configured weights (cache first, then a download);
  * on failure with ``strict`` off, the cnn falls back to the bundled EfficientNet-Lite0 and
    clip turns off; each fallback is logged as a WARNING naming the cause and the setting
    that fixes it, and recorded in ``ModelStatus`` for ``lookalike status``;
  * with ``strict`` on, the failure is raised as ``ModelLoadError``.
Random weights are used only when a setting says 'random'.

``planned_models`` never imports torch: it reads names from the classes, whose modules import
torch lazily inside ``load()``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from embedder.base import Model, WeightsInfo
from embedder.clip import ClipViTB32
from embedder.cnn import EffNetLite0, ResNet50Gem
from embedder.config import ModelConfig
from embedder.errors import ModelLoadError
from embedder.hsv import HsvHistogram
from embedder.roles import NEURAL_ROLES, ROLES
from embedder.torch_model import TorchModel

log = logging.getLogger(__name__)


MODELS: dict[str, type[Model]] = {
    cls.name: cls for cls in (ClipViTB32, ResNet50Gem, EffNetLite0, HsvHistogram)
}
CNN_CLASSES: dict[str, type[TorchModel]] = {c.name: c for c in (ResNet50Gem, EffNetLite0)}
CNN_MODELS: tuple[str, ...] = tuple(CNN_CLASSES)
FALLBACK_CNN = EffNetLite0.name

STRICT_HINT = "LOOKALIKE_MODELS_STRICT=1 makes this fatal instead."
# Why a role that the configuration switched off has no model.
_OFF_BY_SETTING = {
    "clip": "disabled by LOOKALIKE_CLIP_WEIGHTS=off",
    "cnn": "disabled by LOOKALIKE_CNN=off",
    "hsv": "disabled by LOOKALIKE_HSV=false",
}


@dataclass(frozen=True)
class ModelStatus:
    """What one role ended up with, for ``lookalike status`` and the Library page."""

    role: str
    name: str | None  # None: the role is off (by configuration or after a failure)
    weights: str | None  # WeightsInfo.source of the loaded model
    fallback: bool = False  # True when this is not what the configuration asked for
    reason: str | None = None  # why, and the setting that fixes it
    dim: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LoadedModels:
    models: list[Model] = field(default_factory=list)  # in ROLES order
    status: list[ModelStatus] = field(default_factory=list)  # one per role, in ROLES order
    warnings: list[str] = field(default_factory=list)


def planned_models(config: ModelConfig) -> list[tuple[str, str]]:
    """(role, name) the configuration asks for, without loading anything (or importing torch).

    A fallback at load time may replace the cnn or drop clip; ``Embedder.status`` says so.
    """
    _check(config)
    planned = []
    if config.clip_weights != "off":
        planned.append(("clip", ClipViTB32.name))
    if config.cnn != "off":
        planned.append(("cnn", config.cnn))
    if config.hsv:
        planned.append(("hsv", HsvHistogram.name))
    return planned


def vector_sizes() -> dict[str, int]:
    """Model name -> vector size, for every registered model: the vectors the store declares,
    whether or not this configuration uses them, so switching a model needs no schema change."""
    return {name: cls.dim for name, cls in MODELS.items()}


def load_models(config: ModelConfig) -> LoadedModels:
    """The configured models, loaded, in ROLES order; one ``ModelStatus`` per role, and a
    human-readable warning for each fallback."""
    planned = dict(planned_models(config))
    out = LoadedModels()
    device = _device(config, out) if NEURAL_ROLES & planned.keys() else "cpu"
    loaders = {"clip": _load_clip, "cnn": _load_cnn, "hsv": _load_hsv}
    for role in ROLES:
        if role in planned:
            loaders[role](planned[role], config, device, out)
        else:
            _off(out, role, _OFF_BY_SETTING[role])
    return out


def _load_clip(name: str, config: ModelConfig, device: str, out: LoadedModels) -> None:
    clip = ClipViTB32(
        config.clip_weights,
        cache_dir=config.cache_dir,
        device=device,
        compile_dir=config.compile_dir,
        text=not config.index_only,
    )
    failure = _try_load(clip, config, out)
    if failure is None:
        _add(out, clip)
    else:
        _warn(out, f"clip: {failure} CLIP is off until then ({STRICT_HINT})")
        _off(out, "clip", failure, fallback=True)


def _load_hsv(name: str, config: ModelConfig, device: str, out: LoadedModels) -> None:
    hsv = HsvHistogram()
    hsv.load()
    _add(out, hsv)


def _load_cnn(name: str, config: ModelConfig, device: str, out: LoadedModels) -> None:
    cnn = CNN_CLASSES[name](
        config.cnn_weights,
        cache_dir=config.cache_dir,
        device=device,
        compile_dir=config.compile_dir,
    )
    failure = _try_load(cnn, config, out)
    if failure is None:
        _add(out, cnn)
        return
    if name == FALLBACK_CNN and config.cnn_weights in ("imagenet", "bundled"):
        _warn(out, f"cnn: {failure} The cnn is off ({STRICT_HINT})")
        _off(out, "cnn", failure, fallback=True)
        return
    fallback = EffNetLite0(
        "imagenet", cache_dir=config.cache_dir, device=device, compile_dir=config.compile_dir
    )
    try:
        fallback.load()
    except ModelLoadError as exc:
        _warn(out, f"cnn: {failure} The fallback {FALLBACK_CNN} failed too ({exc}); cnn is off.")
        _off(out, "cnn", f"{failure} Fallback failed: {exc}", fallback=True)
        return
    _warn(
        out,
        f"cnn: {failure} Using the bundled {FALLBACK_CNN} (ImageNet weights) instead of "
        f"{name} ({STRICT_HINT})",
    )
    fallback.weights = WeightsInfo(source="bundled", fallback=True, reason=failure)
    _add(out, fallback)


def _try_load(model: Model, config: ModelConfig, out: LoadedModels) -> str | None:
    """None when loaded; else the reason. Raises instead when ``strict``."""
    try:
        model.load()
    except ModelLoadError as exc:
        if config.strict:
            raise
        return str(exc)
    if model.weights.source == "random":
        _warn(
            out,
            f"{model.role}: {model.name} uses random weights, as configured: its vectors mean "
            "nothing (meant for tests). Set LOOKALIKE_CLIP_WEIGHTS / LOOKALIKE_CNN_WEIGHTS "
            "to real weights.",
        )
    return None


def _device(config: ModelConfig, out: LoadedModels) -> str:
    from embedder.runtime import resolve_device

    try:
        return resolve_device(config.device)
    except ModelLoadError as exc:
        if config.strict:
            raise
        _warn(out, f"{exc} Using the CPU.")
        return "cpu"


def _check(config: ModelConfig) -> None:
    # A misspelt model name is a configuration error, not missing weights: never a fallback.
    if config.cnn != "off" and config.cnn not in CNN_MODELS:
        raise ModelLoadError(
            f"Unknown CNN {config.cnn!r}. Set LOOKALIKE_CNN to one of "
            f"{', '.join(CNN_MODELS)} or off.",
            setting="LOOKALIKE_CNN",
        )
    if not config.clip_weights or not config.cnn_weights:
        raise ModelLoadError(
            "LOOKALIKE_CLIP_WEIGHTS and LOOKALIKE_CNN_WEIGHTS must not be empty.",
            setting="LOOKALIKE_CLIP_WEIGHTS"
            if not config.clip_weights
            else "LOOKALIKE_CNN_WEIGHTS",
        )


def _warn(out: LoadedModels, message: str) -> None:
    log.warning("%s", message)
    out.warnings.append(message)


def _add(out: LoadedModels, model: Model) -> None:
    out.models.append(model)
    w = model.weights
    out.status.append(
        ModelStatus(model.role, model.name, w.source, w.fallback, w.reason, dim=model.dim)
    )


def _off(out: LoadedModels, role: str, reason: str, *, fallback: bool = False) -> None:
    out.status.append(ModelStatus(role, None, None, fallback=fallback, reason=reason))
