"""int8 inference (embedder/int8.py): calibrated on the first images a model embeds, kept only
when its vectors stay within the fidelity bound of fp32, never a crash when it cannot run;
and the index readers hold back while an int8 model infers (embedder/pipeline.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from embedder_test_helpers import cosine, rgb
from PIL import Image
from skimage import data
from torchvision.models.resnet import BasicBlock, Bottleneck, resnet18

import embedder.int8 as int8
from embedder import pipeline
from embedder.base import WeightsInfo
from embedder.cnn import ResNet50Gem
from embedder.config import ModelConfig
from embedder.errors import ModelLoadError
from embedder.nets import PooledFeatures, fuse_attention
from embedder.pipeline import Embedder
from embedder.preprocess import InputSpec
from embedder.torch_model import TorchModel, seeded

unavailable = int8.unavailable_reason("cpu", "bf16")
needs_int8 = pytest.mark.skipif(unavailable is not None, reason=str(unavailable))


def crops(n: int, seed: int) -> list[Image.Image]:
    """Real photographic content: random square crops of scikit-image's colour photos."""
    sources = [
        rgb(getattr(data, name)())
        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
    ]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = sources[i % len(sources)]
        side = int(rng.integers(min(image.size) // 2, min(image.size) + 1))
        x = int(rng.integers(0, image.width - side + 1))
        y = int(rng.integers(0, image.height - side + 1))
        out.append(image.crop((x, y, x + side, y + side)))
    return out


class TinyResNet(TorchModel):
    """A GeM-pooled stem + two torchvision BasicBlocks: the ResNet pattern, fast to compile."""

    role = "cnn"
    name = "tiny-resnet"
    dim = 16
    input_spec = InputSpec(resize=72, crop=64, mean=(0.5,) * 3, std=(0.5,) * 3)

    def _build(self) -> tuple[torch.nn.Module, WeightsInfo]:
        def make() -> torch.nn.Module:
            stem = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(16),
                torch.nn.ReLU(),
            )
            trunk = torch.nn.Sequential(stem, BasicBlock(16, 16), BasicBlock(16, 16))
            return PooledFeatures(trunk)

        return seeded(make), WeightsInfo(source="random")


@contextlib.contextmanager
def no_recompiles() -> Iterator[None]:
    """A compiled module that fails a guard recompiles, silently slower (no freezing): make
    that an error instead."""
    with torch._dynamo.config.patch(error_on_recompile=True):
        yield


def embed_all(model: TorchModel, images: list[Image.Image], batch: int = 16) -> np.ndarray:
    inputs = [model.preprocess(im) for im in images]
    return np.concatenate(
        [model.embed(inputs[i : i + batch]) for i in range(0, len(inputs), batch)]
    )


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


@needs_int8
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


def test_int8_setting_is_checked_and_off_without_compile_or_bf16() -> None:
    model = TinyResNet("random")
    model.load()
    with pytest.raises(ModelLoadError, match="LOOKALIKE_INT8"):
        model.tune("bf16", "on", "yes")
    model.tune("bf16", "off", "auto")  # int8 is a compile step
    assert model.int8_mode == "off" and model.int8_note is None
    model.tune("fp32", "on", "auto")
    assert model.int8_mode == "off" and "bf16" in (model.int8_note or "")
    assert "CPU" in (int8.unavailable_reason("cuda", "bf16") or "")


@needs_int8
def test_resnet50_int8_keeps_every_vector_within_the_fidelity_bound() -> None:
    """The real model, random weights (same compute): calibrated on the first 64 images it
    embeds, then used for batches of 2 or more, within cosine 0.995 of fp32 on unseen crops."""
    model = ResNet50Gem("random")
    model.load()
    reference = embed_all(model, held_out := crops(24, seed=2))  # fp32, as built
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=1))  # the first images: calibration and checks
    model.start_compile(background=False)
    assert model.int8, model.int8_note
    assert model.int8_s is not None and model.int8_note is None
    fast = embed_all(model, held_out)
    sims = [cosine(a, b) for a, b in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims
    assert model._samples == []  # released once used


@needs_int8
def test_a_plain_compile_is_upgraded_once_the_calibration_images_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="embedder.torch_model")
    model = TinyResNet("random")
    model.load()
    model.tune("bf16", "on", "auto")
    model.start_compile(background=False)  # nothing embedded yet: compiles without int8
    assert model._compiled is not None and not model.int8
    embed_all(model, crops(int8.SAMPLES, seed=3))  # starts the int8 build in the background
    assert model.wait_compiled(timeout=300)
    assert model.int8, model.int8_note
    assert "int8 in" in caplog.text and "min cosine to fp32" in caplog.text


@needs_int8
def test_batches_of_the_index_batch_size_run_their_own_compile() -> None:
    """int8 compiled for a dynamic batch repacks weights on every call; the batch size that
    indexing sends gets a compile of its own. Both keep the vectors of fp32."""
    model = TinyResNet("random")
    model.load()
    held_out = crops(8, seed=9)
    reference = embed_all(model, held_out, batch=5)  # fp32, as built
    model.tune("bf16", "on", "auto", batch_size=5)
    embed_all(model, crops(int8.SAMPLES, seed=10))
    model.start_compile(background=False)
    assert model.int8 and set(model._static) == {5} and model._compiled is not None
    calls: list[tuple[str, int]] = []

    def counted(name: str, fn: Any) -> Any:
        def run(x: torch.Tensor) -> Any:
            calls.append((name, len(x)))
            return fn(x)

        return run

    model._static[5] = counted("static", model._static[5])
    model._compiled = counted("dynamic", model._compiled)
    with no_recompiles():
        fast = embed_all(model, held_out, batch=5)  # a batch of 5, then one of 3
    assert calls == [("static", 5), ("dynamic", 3)]
    sims = [cosine(a, b) for a, b in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims


@needs_int8
def test_full_search_batches_that_keep_coming_get_their_own_compile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server under load embeds full query batches; after STATIC_AFTER_FULL_BATCHES of
    them, int8 models compile for that size too, checked against fp32, then serve it."""
    caplog.set_level("INFO", logger="embedder.torch_model")
    monkeypatch.setattr(pipeline, "STATIC_AFTER_FULL_BATCHES", 3)
    model = TinyResNet("random")
    model.load()
    held_out = crops(3, seed=11)
    reference = embed_all(model, held_out)  # fp32, as built
    model.add_batch_size(3, background=False)
    assert model._static_asked == set()  # no int8 yet: nothing to compile
    model.tune("bf16", "on", "auto", batch_size=5)
    embed_all(model, crops(int8.SAMPLES, seed=12))
    model.start_compile(background=False)
    assert model.int8 and set(model._static) == {5}
    config = ModelConfig(clip_weights="off", cnn="off", hsv=True, batch_size=5, query_batch=3)
    with Embedder(config) as embedder:
        embedder._require().models.append(model)
        queries = [embedder.prepare(im) for im in held_out]
        for _ in range(2):
            embedder.embed_inputs(queries)
        embedder.embed_inputs(queries[:2])  # not a full batch: not counted
        assert 3 not in model._static_asked
        embedder.embed_inputs(queries)  # the third full batch
        assert model.wait_compiled(timeout=300)
        assert set(model._static) == {3, 5}, caplog.text
        calls: list[int] = []
        static = model._static[3]
        model._static[3] = lambda x: calls.append(len(x)) or static(x)
        with no_recompiles():
            fast = embedder.embed_inputs(queries)
        assert calls == [3]
    assert "int8 for batches of 3 in" in caplog.text
    sims = [cosine(f["tiny-resnet"], r) for f, r in zip(fast, reference, strict=True)]
    assert min(sims) >= 0.995, sims
    model.add_batch_size(3, background=False)  # once per size
    assert caplog.text.count("int8 for batches of 3") == 1


def test_a_compile_on_another_thread_uses_the_models_thread_count() -> None:
    """torch's thread count is per OS thread and compiled code guards on it: a compile on a
    thread with another count would recompile (unfrozen, slow) at its first real call."""
    model = TinyResNet("random")
    model.load()
    model.tune("bf16", "on", "off")  # the plain compile: the same guard, and quick
    threads = model.threads
    assert threads == torch.get_num_threads()

    def compile_elsewhere() -> None:
        torch.set_num_threads(threads + 1)
        model.start_compile(background=False)
        assert torch.get_num_threads() == threads

    worker = threading.Thread(target=compile_elsewhere)
    worker.start()
    worker.join()
    assert model._compiled is not None
    inputs = [model.preprocess(im) for im in crops(4, seed=13)]
    with no_recompiles():
        assert model.embed(inputs).shape == (4, model.dim)


@needs_int8
def test_two_models_upgraded_by_the_same_batches_both_get_int8() -> None:
    """A server's models fill their calibration sets in the same batch and build at once:
    the builds must not trip over each other (torch.export's tracing state is global)."""
    models = [TinyResNet("random"), TinyResNet("random")]
    for model in models:
        model.load()
        model.tune("bf16", "on", "auto")
        model.start_compile(background=False)
    inputs = [models[0].preprocess(im) for im in crops(int8.SAMPLES, seed=8)]
    for start in range(0, len(inputs), 16):
        for model in models:  # as Embedder._infer does: model after model, batch by batch
            model.embed(inputs[start : start + 16])
    for model in models:
        assert model.wait_compiled(timeout=300)
        assert model.int8, model.int8_note


@needs_int8
def test_int8_that_moves_the_vectors_too_far_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(int8, "MIN_COSINE", 1.01)  # no int8 result can pass this
    model = TinyResNet("random")
    model.load()
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=4))
    model.start_compile(background=False)
    assert not model.int8
    assert "changed the vectors too much" in (model.int8_note or "")
    assert "staying bf16" in caplog.text
    assert model._compiled is not None  # the plain compile serves instead
    inputs = [model.preprocess(im) for im in crops(4, seed=5)]
    assert model.embed(inputs).shape == (4, model.dim)


@needs_int8
def test_a_failing_int8_build_leaves_the_model_working(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(runner: Any, calibration: Any) -> Any:
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(int8, "quantize", broken)
    model = TinyResNet("random")
    model.load()
    model.tune("bf16", "on", "auto")
    embed_all(model, crops(int8.SAMPLES, seed=6))
    model.start_compile(background=False)
    assert not model.int8 and "no kernel for this op" in (model.int8_note or "")
    assert model._compiled is not None
    assert "staying bf16" in caplog.text


def test_readers_hold_back_while_an_int8_model_infers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate itself (the speed-up is bench/index_throughput.py's): no decode starts while
    a model marked int8 embeds; with no int8 model, decoding overlaps inference."""
    paths = []
    for i, image in enumerate(crops(40, seed=7)):
        paths.append(tmp_path / f"{i}.jpg")
        image.save(paths[-1], quality=90)
    decode_starts: list[float] = []
    original = pipeline.decode_image

    def recording_decode(*args: Any, **kwargs: Any) -> Any:
        decode_starts.append(time.monotonic())
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "decode_image", recording_decode)

    def run(int8_on: bool) -> int:
        config = ModelConfig(clip_weights="off", cnn="off", hsv=True, batch_size=8)
        with Embedder(config, decode_workers=2) as embedder:
            model = TinyResNet("random")
            model.load()
            model.int8 = int8_on  # what the gate reads
            spans: list[tuple[float, float]] = []
            lock = threading.Lock()
            plain_embed = model.embed

            def slow_embed(batch: list[np.ndarray]) -> np.ndarray:
                start = time.monotonic()
                time.sleep(0.15)  # long enough for free readers to start decoding
                out = plain_embed(batch)
                with lock:
                    spans.append((start, time.monotonic()))
                return out

            monkeypatch.setattr(model, "embed", slow_embed)
            embedder._require().models.append(model)
            decode_starts.clear()
            results = list(embedder.embed_files([(p.name, p) for p in paths]))
            assert all(r.ok for r in results) and len(results) == len(paths)
            assert all(r.vectors is not None and "tiny-resnet" in r.vectors for r in results)
            # 20 ms of grace: a reader let through just before the gate closed may record its
            # start a GIL switch (5 ms) later.
            return sum(1 for t in decode_starts for s, e in spans if s + 0.02 < t < e)

    assert run(int8_on=True) == 0
    assert run(int8_on=False) > 0


@needs_int8
def test_without_torchao_the_model_says_so_and_stays_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8.importlib.util, "find_spec", lambda name: None)
    model = TinyResNet("random")
    model.load()
    model.tune("bf16", "on", "auto")
    assert model.int8_mode == "off" and model.int8_note == "torchao is not installed"
    assert model.runtime() == {
        "device": "cpu",
        "precision": "bf16",
        "compiled": False,
        "int8": False,
        "int8_note": "torchao is not installed",
    }
