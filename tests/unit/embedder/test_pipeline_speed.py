"""Speed settings: precision, fused attention, channels_last and compilation, and that none of
them moves a vector further than the fidelity bound (cosine >= 0.995 to fp32)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from embedder_test_helpers import cosine
from PIL import Image

import embedder.torch_model as torch_model
from embedder.base import WeightsInfo
from embedder.clip import ClipViTB32
from embedder.cnn import EffNetLite0, ResNet50Gem
from embedder.config import ModelConfig
from embedder.errors import ModelLoadError
from embedder.nets import FusedSelfAttention, PooledFeatures, fuse_attention
from embedder.pipeline import Embedder
from embedder.preprocess import InputSpec
from embedder.torch_model import TorchModel, resolve_precision, seeded

native_bf16 = pytest.mark.skipif(
    not torch_model.cpu_has_bf16(), reason="this CPU has no native bf16 (auto picks fp32)"
)


def vectors(model: TorchModel, photos: dict[str, Image.Image]) -> np.ndarray:
    return model.embed([model.preprocess(p) for p in photos.values()])


@pytest.fixture(scope="module")
def fast_clip() -> Iterator[ClipViTB32]:
    model = ClipViTB32("random")
    model.load()
    model.tune("bf16", "off")
    yield model


class Tiny(TorchModel):
    """A small convnet with the backbones' shape (GeM-pooled trunk), fast to build."""

    role = "cnn"
    name = "tiny"
    dim = 8
    input_spec = InputSpec(resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)

    def _build(self) -> tuple[torch.nn.Module, WeightsInfo]:
        trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        return seeded(lambda: PooledFeatures(trunk)), WeightsInfo(source="random")


def test_fp32_leaves_the_module_as_built(random_clip: ClipViTB32) -> None:
    random_clip.tune("fp32", "off")  # a no-op: safe on the shared fixture
    assert random_clip.precision == "fp32"
    assert not any(isinstance(m, FusedSelfAttention) for m in random_clip._module.modules())  # type: ignore[union-attr]


@native_bf16
def test_bf16_clip_stays_within_the_fidelity_bound(
    fast_clip: ClipViTB32, random_clip: ClipViTB32, photos: dict[str, Image.Image]
) -> None:
    assert fast_clip.precision == "bf16"
    fused = sum(isinstance(m, FusedSelfAttention) for m in fast_clip._module.modules())  # type: ignore[union-attr]
    assert fused == 12  # the image tower's layers; the text tower keeps its masked attention
    for fast, ref in zip(vectors(fast_clip, photos), vectors(random_clip, photos), strict=True):
        assert cosine(fast, ref) >= 0.995
    # Text still works (and is unaffected: it never goes through the image tower).
    np.testing.assert_allclose(fast_clip.embed_text(["a cat"]), random_clip.embed_text(["a cat"]))


@native_bf16
@pytest.mark.parametrize("which", ["resnet", "effnet"])
def test_bf16_cnns_stay_within_the_fidelity_bound(
    which: str,
    random_resnet: ResNet50Gem,
    bundled_effnet: EffNetLite0,
    photos: dict[str, Image.Image],
) -> None:
    # EffNet-Lite0's bundled weights are real ImageNet weights: the strictest check here.
    # 'auto' keeps it in fp32 (it misses the bound compiled); asked for, bf16 holds eager.
    ref: TorchModel = random_resnet if which == "resnet" else bundled_effnet
    fast = type(ref)(ref.requested)
    fast.load()
    fast.tune("auto" if which == "resnet" else "bf16", "off")
    assert fast.precision == "bf16" and fast._channels_last
    if which == "effnet":
        auto = EffNetLite0("imagenet")
        auto.load()
        auto.tune("auto", "off")
        assert auto.precision == "fp32"
    for a, b in zip(vectors(fast, photos), vectors(ref, photos), strict=True):
        assert cosine(a, b) >= 0.995


def test_fused_attention_equals_multihead_attention() -> None:
    torch.manual_seed(0)
    root = torch.nn.Sequential(torch.nn.MultiheadAttention(64, 4, batch_first=True))
    reference = root[0]
    assert fuse_attention(root) == 1 and isinstance(root[0], FusedSelfAttention)
    x = torch.randn(3, 10, 64)
    with torch.inference_mode():
        want, _ = reference(x, x, x, need_weights=False)
        got, weights = root[0](x, x, x, need_weights=False)
        assert weights is None
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # What the fused path does not cover goes to the original module.
        mask = torch.triu(torch.full((10, 10), float("-inf")), 1)
        torch.testing.assert_close(
            root[0](x, x, x, need_weights=False, attn_mask=mask)[0],
            reference(x, x, x, need_weights=False, attn_mask=mask)[0],
        )
        assert root[0](x, x, x)[1] is not None  # attention weights asked for


def test_precision_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_model, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: honoured, if slow
    monkeypatch.setattr(torch_model, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ModelLoadError, match="LOOKALIKE_PRECISION"):
        resolve_precision("fp8", "cpu")


class Spy:
    """Stands in for torch.compile: records calls, or fails like a missing C++ compiler."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[int] = []

    def __call__(self, module: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise RuntimeError("no C++ compiler")

        def compiled(x: torch.Tensor) -> torch.Tensor:
            self.calls.append(len(x))
            return module(x)

        return compiled


def test_compiled_module_serves_batches_of_two_or_more(
    monkeypatch: pytest.MonkeyPatch, photos: dict[str, Image.Image]
) -> None:
    spy = Spy()
    monkeypatch.setattr(torch, "compile", spy)
    model = Tiny("random")
    model.load()
    model.tune("fp32", "auto")
    model.start_compile(background=True)
    assert model.wait_compiled(timeout=60)
    model.start_compile()  # once per model
    assert spy.calls == [4]  # the warm-up call
    inputs = [model.preprocess(p) for p in photos.values()]
    assert len(inputs) == 3
    model.embed(inputs)
    model.embed(inputs[:2])
    model.embed(inputs[:1])  # batch 1: the eager module
    assert spy.calls == [4, 3, 2]


def test_a_failed_compile_stays_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch, "compile", Spy(fail=True))
    model = Tiny("random")
    model.load()
    model.tune("fp32", "on")
    model.start_compile(background=False)
    assert not model.wait_compiled(timeout=1) and model.compile_s is not None
    assert "staying eager" in caplog.text
    off = Tiny("random")
    off.load()
    off.tune("fp32", "off")
    off.start_compile(background=False)
    assert off._compiled is None and off.compile_s is None


def test_embed_inputs_batches_prepared_images(photos: dict[str, Image.Image]) -> None:
    config = ModelConfig(clip_weights="off", cnn="off", hsv=True)
    with Embedder(config) as embedder:
        images = list(photos.values())
        together = embedder.embed_inputs([embedder.prepare(im) for im in images])
        assert embedder.embed_inputs([]) == []
        separately = embedder.embed_images(images)
        assert embedder.precision == {}  # no neural model
    for i, item in enumerate(together):
        assert set(item) == {"hsv-8x8x8"}
        for name, v in item.items():
            np.testing.assert_allclose(v, separately[name][i], atol=1e-5)
