"""What the neural backbones share (embedder/torch_model.py): load, tune, embed, and the
shape the pipeline relies on (embedder.base.Accelerated)."""

from __future__ import annotations

import numpy as np
import pytest
from embedder_tiny_models import Tiny, pixels

from embedder.base import Accelerated, TextEmbedder
from embedder.clip import ClipViTB32
from embedder.cnn import EffNetLite0, ResNet50Gem
from embedder.nets import PixelInput


def test_the_backbones_offer_speed_settings_and_only_clip_reads_text() -> None:
    for cls in (ClipViTB32, ResNet50Gem, EffNetLite0):
        assert isinstance(cls("random"), Accelerated)  # built, not loaded: cheap
    assert isinstance(ClipViTB32("random"), TextEmbedder)
    assert not isinstance(ResNet50Gem("random"), TextEmbedder)


def test_nothing_runs_before_load() -> None:
    model = Tiny("random")
    assert not model.loaded and model.weights.source == "not loaded"
    with pytest.raises(RuntimeError, match="load"):
        model.tune("fp32", "off")
    with pytest.raises(RuntimeError, match="load"):
        model.embed(pixels(model, 1))
    assert model.runtime() == {
        "device": "cpu",
        "precision": "fp32",
        "compiled": False,
        "int8": False,
        "int8_note": None,
    }
    model.start_compile(background=False)  # no module yet: nothing to compile
    assert not model.wait_compiled(timeout=1)


def test_load_embed_and_tune() -> None:
    model = Tiny("random")
    model.load()
    module = model._module
    model.load()  # once
    assert model.loaded and model._module is module and model.weights.source == "random"
    assert isinstance(model._runner, PixelInput) and model.compiled.eager is model._runner
    assert model.embed([]).shape == (0, model.dim)
    v = model.embed(pixels(model, 3))
    assert v.shape == (3, model.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    model.tune("bf16", "auto", "off", batch_size=8)
    assert model.precision == "bf16" and model.compiled.compile_mode == "auto"
    assert model.compiled.batch_size == 8 and model.execution.threads > 0


def test_settling_eager_keeps_bf16_weights_and_never_compiles_after() -> None:
    import torch

    fp32 = Tiny("random")
    fp32.load()
    fp32.tune("fp32", "auto")
    assert not fp32.settle_eager()  # fp32 runs keep their weights

    model = Tiny("random")
    model.load()
    model.tune("bf16", "auto")
    x = pixels(model, 4)
    before = model.embed(x)
    assert model.settle_eager()
    assert model._module is not None
    assert {p.dtype for p in model._module.parameters()} == {torch.bfloat16}
    after = model.embed(x)
    assert (before * after).sum(axis=1).min() > 0.999
    assert model.expected_compile_s() == 0.0
    model.start_compile(background=False)
    assert not model.wait_compiled(timeout=1) and model.compiled.dynamic is None
    assert model.settle_eager()  # again: nothing left to change, nothing breaks


def test_a_model_that_started_compiling_does_not_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    model = Tiny("random")
    model.load()
    model.tune("bf16", "auto")
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)  # no C++ build here
    model.start_compile(background=False)
    assert not model.settle_eager()
    assert model._module is not None
    assert {p.dtype for p in model._module.parameters()} == {torch.float32}


@pytest.mark.slow
@pytest.mark.parametrize("model_class", [ClipViTB32, ResNet50Gem])
def test_settled_backbones_keep_their_vectors(model_class: type[ClipViTB32 | ResNet50Gem]) -> None:
    """bf16 weights change the vectors by little: cosine >= 0.9999 to fp32 on real photos."""
    from embedder_tiny_models import crops, embed_all

    model = model_class("random")
    model.load()
    images = crops(16, seed=3)
    reference = embed_all(model, images)  # fp32, as built
    model.tune("bf16", "off")
    assert model.settle_eager()
    settled = embed_all(model, images)
    assert (reference * settled).sum(axis=1).min() >= 0.9999
