"""Which models a configuration gets, and what happens when weights cannot be had."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from embedder_test_helpers import Offline

from embedder.config import ModelConfig
from embedder.errors import ModelLoadError
from embedder.registry import MODELS, ModelStatus, load_models, planned_models, vector_sizes
from embedder.roles import ROLES

ROOT = Path(__file__).resolve().parents[3]


def offline_config(tmp_path: Path, **overrides: object) -> ModelConfig:
    """The defaults (openai CLIP, ImageNet ResNet-50) over an empty cache."""
    return ModelConfig(cache_dir=tmp_path / "cache", **overrides)  # type: ignore[arg-type]


def test_vector_sizes_come_from_the_registered_models() -> None:
    assert vector_sizes() == {
        "clip-vit-b-32": 512,
        "resnet50": 2048,
        "effnet-lite0": 1280,
        "hsv-8x8x8": 512,
    }
    assert list(vector_sizes()) == list(MODELS)
    assert {cls.role for cls in MODELS.values()} == set(ROLES)


def test_planned_models() -> None:
    assert planned_models(ModelConfig()) == [
        ("clip", "clip-vit-b-32"),
        ("cnn", "resnet50"),
        ("hsv", "hsv-8x8x8"),
    ]
    cfg = ModelConfig(clip_weights="off", cnn="effnet-lite0", hsv=False)
    assert planned_models(cfg) == [("cnn", "effnet-lite0")]
    with pytest.raises(ModelLoadError, match="LOOKALIKE_CNN"):
        planned_models(ModelConfig(cnn="vgg16"))


def test_planning_and_hsv_only_never_import_torch() -> None:
    code = (
        "import sys, embedder\n"
        "from embedder.registry import planned_models, load_models, vector_sizes\n"
        "from embedder.config import ModelConfig\n"
        "planned_models(ModelConfig())\n"
        "vector_sizes()\n"
        "loaded = load_models(ModelConfig(clip_weights='off', cnn='off'))\n"
        "assert [m.name for m in loaded.models] == ['hsv-8x8x8']\n"
        "heavy = {'torch', 'torchvision', 'open_clip'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_offline_defaults_fall_back_loudly(
    tmp_path: Path, offline: Offline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="embedder")
    loaded = load_models(offline_config(tmp_path))

    assert [(m.role, m.name) for m in loaded.models] == [
        ("cnn", "effnet-lite0"),
        ("hsv", "hsv-8x8x8"),
    ]
    cnn = loaded.models[0]
    assert cnn.weights.source == "bundled" and cnn.weights.fallback
    assert cnn.weights.reason and "LOOKALIKE_CNN_WEIGHTS" in cnn.weights.reason
    assert all(m.weights.source != "random" for m in loaded.models)

    clip, cnn_status, hsv = loaded.status
    assert clip == ModelStatus("clip", None, None, True, clip.reason)
    assert clip.reason and "LOOKALIKE_CLIP_WEIGHTS" in clip.reason
    assert (cnn_status.name, cnn_status.weights, cnn_status.fallback) == (
        "effnet-lite0",
        "bundled",
        True,
    )
    assert (hsv.name, hsv.fallback) == ("hsv-8x8x8", False)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == loaded.warnings and len(warnings) == 2
    assert "LOOKALIKE_CLIP_WEIGHTS" in warnings[0] and "CLIP is off" in warnings[0]
    assert "LOOKALIKE_CNN_WEIGHTS" in warnings[1] and "effnet-lite0" in warnings[1]
    assert all("LOOKALIKE_MODELS_STRICT" in w for w in warnings)
    assert len(offline.attempts) == 2  # one download tried per backbone, nothing more


def test_strict_raises_instead(tmp_path: Path, offline: Offline) -> None:
    with pytest.raises(ModelLoadError, match="LOOKALIKE_CLIP_WEIGHTS"):
        load_models(offline_config(tmp_path, strict=True))
    with pytest.raises(ModelLoadError, match="LOOKALIKE_CNN_WEIGHTS"):
        load_models(offline_config(tmp_path, strict=True, clip_weights="off"))


def test_a_bad_effnet_path_falls_back_to_the_bundled_weights(tmp_path: Path) -> None:
    cfg = ModelConfig(
        clip_weights="off", cnn="effnet-lite0", cnn_weights=str(tmp_path / "x.pth"), hsv=False
    )
    loaded = load_models(cfg)
    (cnn,) = loaded.models
    assert (cnn.name, cnn.weights.source, cnn.weights.fallback) == ("effnet-lite0", "bundled", True)
    assert cnn.weights.reason and "x.pth" in cnn.weights.reason


def test_random_only_when_asked_and_then_said(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="embedder")
    cfg = ModelConfig(clip_weights="off", cnn="effnet-lite0", cnn_weights="random", hsv=False)
    loaded = load_models(cfg)
    assert [m.weights.source for m in loaded.models] == ["random"]
    assert not loaded.models[0].weights.fallback
    assert any("random weights" in r.getMessage() for r in caplog.records)


def test_roles_switched_off_are_reported() -> None:
    loaded = load_models(ModelConfig(clip_weights="off", cnn="off", hsv=False))
    assert loaded.models == []
    assert [(s.role, s.name, s.fallback) for s in loaded.status] == [
        ("clip", None, False),
        ("cnn", None, False),
        ("hsv", None, False),
    ]
    assert [s.reason for s in loaded.status] == [
        "disabled by LOOKALIKE_CLIP_WEIGHTS=off",
        "disabled by LOOKALIKE_CNN=off",
        "disabled by LOOKALIKE_HSV=false",
    ]


def test_cuda_asked_for_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = ModelConfig(clip_weights="off", cnn="effnet-lite0", hsv=False, device="cuda")
    loaded = load_models(cfg)
    assert [m.name for m in loaded.models] == ["effnet-lite0"]
    assert any("LOOKALIKE_DEVICE" in w for w in loaded.warnings)
    with pytest.raises(ModelLoadError, match="LOOKALIKE_DEVICE"):
        load_models(ModelConfig(clip_weights="off", cnn="effnet-lite0", device="cuda", strict=True))
