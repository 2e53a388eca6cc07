"""int8 inference (embedder/int8.py): the quantizer's view of the networks, and real int8
builds through the compiled runner, calibrated on the first images a model embeds and kept
only when their vectors stay within the fidelity bound of fp32.

The real builds need VNNI and native bf16 (skipped elsewhere); test_compiled.py runs the
runner's int8 decisions everywhere, with a pass-through quantizer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from embedder_test_helpers import cosine
from embedder_tiny_models import TinyResNet, crops, embed_all, loaded, no_recompiles
from torchvision.models.resnet import BasicBlock, Bottleneck, resnet18

import embedder.int8 as int8
from embedder import pipeline
from embedder.cnn import ResNet50Gem
from embedder.config import ModelConfig
from embedder.nets import fuse_attention
from embedder.pipeline import Embedder
from embedder.weights import seeded

unavailable = int8.unavailable_reason("cpu", "bf16")
needs_int8 = pytest.mark.skipif(unavailable is not None, reason=str(unavailable))
LOGGER = "embedder.compiled"


def test_split_relus_keeps_the_network_and_its_output() -> None:
    net = seeded(lambda: resnet18()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        assert int8.split_shared_relus(net) == 8  # resnet18's BasicBlocks
        assert int8.split_shared_relus(net) == 0  # once
        after = net(x)
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert all(b.relu_in is not b.relu for b in blocks)
    assert set(net.state_dict()) == set(seeded(lambda: resnet18()).state_dict())
    assert isinstance(int8._split_blocks()[0](8, 2), Bottleneck)


class TinyViTBlock(torch.nn.Module):
    """Attention (fused, as tune() fuses CLIP's) and an MLP: the linear layers CLIP has."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 4, batch_first=True)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32)
        )
        fuse_attention(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(x)


def test_every_attention_projection_becomes_a_quantizable_linear() -> None:
    block = seeded(TinyViTBlock).eval()
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        before = block(x)
        # in_proj (q, k, v) and out_proj, which is torch's NonDynamicallyQuantizableLinear
        assert int8.expose_attention_linears(block) == 2
        assert int8.expose_attention_linears(block) == 0  # once
        after = block(x)
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    assert block.attn.in_proj.weight is block.attn.mha.in_proj_weight  # shared, not copied
    assert type(block.attn.mha.out_proj) is torch.nn.Linear
    assert set(block.state_dict()) >= set(seeded(TinyViTBlock).state_dict())


def test_where_int8_cannot_run_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert int8.unavailable_reason("cuda", "bf16") == "int8 is for CPU inference"
    assert int8.unavailable_reason("cpu", "fp32") == (
        "int8 runs where bf16 does (a CPU with native bf16)"
    )
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False, raising=False)
    assert int8.unavailable_reason("cpu", "bf16") == "the CPU has no VNNI int8 instructions"


def test_min_cosine_is_the_worst_row() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[3.0, 0.0], [1.0, 1.0]])
    assert int8.min_cosine(a, b) == pytest.approx(np.sqrt(0.5))


@needs_int8
@pytest.mark.slow
def test_int8_quantizes_every_linear_layer_of_an_attention_block() -> None:
    """Before the projections were exposed, q/k/v and the output projection stayed bf16: a
    third of CLIP's linear work. Every linear now reads int8 weights."""
    block = seeded(TinyViTBlock).eval()
    converted = int8.quantize(block, torch.randn(16, 10, 32))
    linears = [
        n
        for n in converted.graph.nodes  # type: ignore[union-attr]
        if n.op == "call_function" and n.target == torch.ops.aten.linear.default
    ]
    assert len(linears) == 4
    weights = [n.args[1] for n in linears]
    assert all("dequantize_per_channel" in str(w.target) for w in weights), weights
    assert block.attn.in_proj is None  # the block itself is untouched


@needs_int8
def test_without_torchao_the_model_says_so_and_stays_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8.importlib.util, "find_spec", lambda name: None)
    model = loaded(TinyResNet)
    model.tune("bf16", "on", "auto")
    assert model.compiled.int8_mode == "off"
    assert model.runtime() == {
        "device": "cpu",
        "precision": "bf16",
        "compiled": False,
        "int8": False,
        "int8_note": "torchao is not installed",
    }


# -- real int8 builds (torch.compile and torchao): slow ------------------------------------------
@needs_int8
@pytest.mark.slow
def test_resnet50_int8_keeps_every_vector_within_the_fidelity_bound() -> None:
    """The real model, random weights (same compute): calibrated on the first 64 images it
    embeds, then used for batches of 2 or more, within cosine 0.995 of fp32 on unseen crops."""
    model = ResNet50Gem("random")
    model.load()
    reference = embed_all(model, held_out := crops(24, seed=2))  # fp32, as built
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=1))  # the first images: calibration and checks
    model.start_compile(background=False)
    assert model.int8, model.compiled.int8_note
    assert model.compiled.int8_s is not None and model.compiled.int8_note is None
    fast = embed_all(model, held_out)
    sims = [cosine(a, b) for a, b in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims
    assert model.compiled._samples == []  # released once used


@needs_int8
@pytest.mark.slow
def test_a_plain_compile_is_upgraded_once_the_calibration_images_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger=LOGGER)
    model = loaded(TinyResNet)
    model.tune("bf16", "on", "auto")
    model.start_compile(background=False)  # nothing embedded yet: compiles without int8
    assert model.compiled.dynamic is not None and not model.int8
    embed_all(model, crops(int8.SAMPLES, seed=3))  # starts the int8 build in the background
    assert model.wait_compiled(timeout=300)
    assert model.int8, model.compiled.int8_note
    assert "int8 in" in caplog.text and "min cosine to fp32" in caplog.text


@needs_int8
@pytest.mark.slow
def test_batches_of_the_index_batch_size_run_their_own_compile() -> None:
    """int8 compiled for a dynamic batch repacks weights on every call; the batch size that
    indexing sends gets a compile of its own. Both keep the vectors of fp32."""
    model = loaded(TinyResNet)
    held_out = crops(8, seed=9)
    reference = embed_all(model, held_out, batch=5)  # fp32, as built
    model.tune("bf16", "on", "auto", batch_size=5)
    embed_all(model, crops(int8.SAMPLES, seed=10))
    model.start_compile(background=False)
    runner = model.compiled
    assert model.int8 and set(runner.static) == {5} and runner.dynamic is not None
    calls: list[tuple[str, int]] = []

    def counted(name: str, fn: Any) -> Any:
        def run(x: torch.Tensor) -> Any:
            calls.append((name, len(x)))
            return fn(x)

        return run

    runner.static[5] = counted("static", runner.static[5])
    runner.dynamic = counted("dynamic", runner.dynamic)
    with no_recompiles():
        fast = embed_all(model, held_out, batch=5)  # a batch of 5, then one of 3
    assert calls == [("static", 5), ("dynamic", 3)]
    sims = [cosine(a, b) for a, b in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims


@needs_int8
@pytest.mark.slow
def test_full_search_batches_that_keep_coming_get_their_own_compile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server under load embeds full query batches; after STATIC_AFTER_FULL_BATCHES of
    them, int8 models compile for that size too, checked against fp32, then serve it."""
    caplog.set_level("INFO", logger=LOGGER)
    monkeypatch.setattr(pipeline, "STATIC_AFTER_FULL_BATCHES", 3)
    model = loaded(TinyResNet)
    runner = model.compiled
    held_out = crops(3, seed=11)
    reference = embed_all(model, held_out)  # fp32, as built
    model.add_batch_size(3, background=False)
    assert runner._static_asked == set()  # no int8 yet: nothing to compile
    model.tune("bf16", "on", "auto", batch_size=5)
    embed_all(model, crops(int8.SAMPLES, seed=12))
    model.start_compile(background=False)
    assert model.int8 and set(runner.static) == {5}
    config = ModelConfig(clip_weights="off", cnn="off", hsv=True, batch_size=5, query_batch=3)
    with Embedder(config) as embedder:
        embedder._require().models.append(model)
        queries = [embedder.prepare(im) for im in held_out]
        for _ in range(2):
            embedder.embed_inputs(queries)
        embedder.embed_inputs(queries[:2])  # not a full batch: not counted
        assert 3 not in runner._static_asked
        embedder.embed_inputs(queries)  # the third full batch
        assert model.wait_compiled(timeout=300)
        assert set(runner.static) == {3, 5}, caplog.text
        calls: list[int] = []
        static = runner.static[3]
        runner.static[3] = lambda x: calls.append(len(x)) or static(x)
        with no_recompiles():
            fast = embedder.embed_inputs(queries)
        assert calls == [3]
    assert "int8 for batches of 3 in" in caplog.text
    sims = [cosine(f["tiny-resnet"], r) for f, r in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims
    model.add_batch_size(3, background=False)  # once per size
    assert caplog.text.count("int8 for batches of 3") == 1


@needs_int8
@pytest.mark.slow
def test_two_models_upgraded_by_the_same_batches_both_get_int8() -> None:
    """A server's models fill their calibration sets in the same batch and build at once:
    the builds must not trip over each other (torch.export's tracing state is global)."""
    models = [loaded(TinyResNet), loaded(TinyResNet)]
    for model in models:
        model.tune("bf16", "on", "auto")
        model.start_compile(background=False)
    inputs = [models[0].preprocess(im) for im in crops(int8.SAMPLES, seed=8)]
    for start in range(0, len(inputs), 16):
        for model in models:  # as Embedder._infer does: model after model, batch by batch
            model.embed(inputs[start : start + 16])
    for model in models:
        assert model.wait_compiled(timeout=300)
        assert model.int8, model.compiled.int8_note


@needs_int8
@pytest.mark.slow
def test_int8_that_moves_the_vectors_too_far_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(int8, "MIN_COSINE", 1.01)  # no int8 result can pass this
    model = loaded(TinyResNet)
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=4))
    model.start_compile(background=False)
    assert not model.int8
    assert (model.compiled.int8_note or "").startswith("int8 changed the vectors too much")
    assert "staying bf16" in caplog.text
    assert model.compiled.dynamic is not None  # the plain compile serves instead
    inputs = [model.preprocess(im) for im in crops(4, seed=5)]
    assert model.embed(inputs).shape == (4, model.dim)


@needs_int8
@pytest.mark.slow
def test_a_failing_int8_build_leaves_the_model_working(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(runner: Any, calibration: Any) -> Any:
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(int8, "quantize", broken)
    model = loaded(TinyResNet)
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=6))
    model.start_compile(background=False)
    assert not model.int8
    assert model.compiled.int8_note == "int8 failed (RuntimeError: no kernel for this op)"
    assert model.compiled.dynamic is not None
    assert "staying bf16" in caplog.text
