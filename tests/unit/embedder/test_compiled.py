"""The compiled runner (embedder/compiled.py): when it compiles, which module serves which
batch, and its int8 decision: swapped in only when the check against fp32 passes, never a
crash. ``Spy`` stands in for torch.compile and a pass-through for the int8 quantizer, so the
control flow runs everywhere; the real int8 builds are in test_int8.py (VNNI + bf16 only)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pytest
import torch
from embedder_tiny_models import Spy, Tiny, TinyResNet, crops, loaded, no_recompiles, pixels

import embedder.int8 as int8
from embedder.errors import ModelLoadError
from embedder.torch_model import TorchModel

LOGGER = "embedder.compiled"


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    monkeypatch.setattr(torch, "compile", spy)
    return spy


class Negated(torch.nn.Module):
    """An 'int8 build' whose vectors point the other way: it must fail the check."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = -self.net(x)
        return out


@pytest.fixture
def int8_here(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """int8 planned on any CPU, its quantizer a pass-through (the module unchanged, so its
    vectors are fp32's); returns the calibration batches it was given."""
    given: list[torch.Tensor] = []

    def quantize(runner: torch.nn.Module, calibration: torch.Tensor) -> torch.nn.Module:
        given.append(calibration)
        return runner

    monkeypatch.setattr(int8, "unavailable_reason", lambda device, precision: None)
    monkeypatch.setattr(int8, "quantize", quantize)
    return given


def int8_model(precision: str = "fp32", batch_size: int = 16) -> TorchModel:
    model = loaded(Tiny)
    model.tune(precision, "on", "auto", batch_size=batch_size)
    assert model.compiled.int8_mode == "auto"
    return model


def calibrate(model: TorchModel) -> None:
    """The first images a model embeds: what int8 calibrates and checks on."""
    inputs = pixels(model, int8.SAMPLES, seed=1)
    for start in range(0, len(inputs), 16):
        model.embed(inputs[start : start + 16])


# -- compiling ---------------------------------------------------------------------------------
def test_compile_off_runs_eager(spy: Spy) -> None:
    model = loaded(Tiny)
    model.tune("fp32", "off", "auto")
    model.start_compile(background=False)
    assert not model.wait_compiled(timeout=5)
    assert model.embed(pixels(model, 3)).shape == (3, model.dim)
    assert spy.compiles == [] and spy.calls == []
    assert model.compiled.compile_s is None and model.compiled.int8_mode == "off"
    assert model.runtime() == {
        "device": "cpu",
        "precision": "fp32",
        "compiled": False,
        "int8": False,
        "int8_note": None,
    }


def test_compiled_module_serves_batches_of_two_or_more(spy: Spy) -> None:
    model = loaded(Tiny)
    model.tune("fp32", "auto")
    assert not model.runtime()["compiled"]
    model.start_compile(background=True)
    assert model.wait_compiled(timeout=60)
    model.start_compile()  # once per model
    assert [c["dynamic"] for c in spy.compiles] == [True]
    # The warm-up: a batch of 4 traces a dynamic size, then the index batch (16) runs in the
    # compile too, where a graph that depends on the batch size recompiles (frozen).
    assert spy.calls == [("dynamic", 4), ("dynamic", 16)]
    inputs = pixels(model, 3)
    model.embed(inputs)
    model.embed(inputs[:2])
    model.embed(inputs[:1])  # batch 1: the eager module
    assert spy.calls == [("dynamic", 4), ("dynamic", 16), ("dynamic", 3), ("dynamic", 2)]
    assert model.runtime()["compiled"] and model.compiled.compile_s is not None


def test_a_failed_compile_stays_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch, "compile", Spy(fail=True))
    model = loaded(Tiny)
    model.tune("fp32", "on")
    model.start_compile(background=False)
    assert not model.wait_compiled(timeout=1) and model.compiled.compile_s is not None
    assert "torch.compile failed, staying eager (no C++ compiler)" in caplog.text
    assert model.embed(pixels(model, 2)).shape == (2, model.dim)


def test_settings_are_checked() -> None:
    model = loaded(Tiny)
    with pytest.raises(ModelLoadError, match="LOOKALIKE_COMPILE=auto, on or off"):
        model.tune("fp32", "sometimes")
    with pytest.raises(ModelLoadError, match="LOOKALIKE_INT8=auto or off"):
        model.tune("bf16", "on", "yes")


def test_int8_is_off_without_compile_or_where_it_cannot_run() -> None:
    model = loaded(Tiny)
    model.tune("bf16", "off", "auto")  # int8 is a compile step
    assert model.compiled.int8_mode == "off" and model.compiled.int8_note is None
    model.tune("fp32", "on", "auto")
    assert model.compiled.int8_mode == "off"
    assert model.compiled.int8_note == "int8 runs where bf16 does (a CPU with native bf16)"
    model.tune("bf16", "on", "off")  # not asked for: no note
    assert model.compiled.int8_mode == "off" and model.compiled.int8_note is None


def test_a_compile_on_another_thread_pins_the_models_thread_count(spy: Spy) -> None:
    """torch's thread count is per OS thread and compiled code guards on it: a compile on a
    thread with another count would recompile (unfrozen, slow) at its first real call."""
    model = loaded(Tiny)
    model.tune("fp32", "on", "off")
    threads = model.execution.threads
    assert threads == torch.get_num_threads()

    def compile_elsewhere() -> None:
        torch.set_num_threads(threads + 1)
        model.start_compile(background=False)

    worker = threading.Thread(target=compile_elsewhere)
    worker.start()
    worker.join()
    assert [c["threads"] for c in spy.compiles] == [threads]


@pytest.mark.slow
def test_a_real_compile_on_another_thread_does_not_recompile() -> None:
    model = loaded(TinyResNet)
    model.tune("bf16", "on", "off")  # the plain compile: the same guard, and quick
    threads = model.execution.threads

    def compile_elsewhere() -> None:
        torch.set_num_threads(threads + 1)
        model.start_compile(background=False)
        assert torch.get_num_threads() == threads

    worker = threading.Thread(target=compile_elsewhere)
    worker.start()
    worker.join()
    assert model.compiled.dynamic is not None
    inputs = [model.preprocess(im) for im in crops(4, seed=13)]
    with no_recompiles():
        assert model.embed(inputs).shape == (4, model.dim)


# -- the int8 decision, with a pass-through quantizer --------------------------------------
def test_int8_that_holds_the_vectors_is_swapped_in(
    spy: Spy, int8_here: list[torch.Tensor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    model = int8_model(batch_size=5)
    calibrate(model)
    model.start_compile(background=False)
    runner = model.compiled
    assert model.int8 and runner.int8_note is None and runner.int8_s is not None
    assert [len(c) for c in int8_here] == [int8.CALIBRATION_IMAGES]
    # Compiled for any batch, then for exactly the index batch: no plain compile.
    assert [c["dynamic"] for c in spy.compiles] == [True, False]
    assert set(runner.static) == {5} and runner.dynamic is not None
    assert runner._samples == []  # released once used
    assert "tiny: int8 in" in caplog.text and "min cosine to fp32 1.0000" in caplog.text
    spy.calls.clear()
    inputs = pixels(model, 9, seed=2)
    model.embed(inputs[:5])
    model.embed(inputs[5:8])
    model.embed(inputs[8:])
    assert spy.calls == [("static", 5), ("dynamic", 3)]  # and batch 1 eager
    assert model.runtime()["int8"] and model.runtime()["compiled"]


def test_int8_that_moves_the_vectors_is_not_used(
    spy: Spy,
    int8_here: list[torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(int8, "quantize", lambda runner, calibration: Negated(runner))
    model = int8_model("bf16")
    calibrate(model)
    model.start_compile(background=False)
    runner = model.compiled
    assert not model.int8 and runner.static == {}
    assert (runner.int8_note or "").startswith(
        "int8 changed the vectors too much (min cosine to fp32 -1.0000 < 0.998 on 32 check"
    )
    assert "staying bf16" in caplog.text
    # The int8 build, its static twin, then the plain compile, which serves instead.
    assert [c["dynamic"] for c in spy.compiles] == [True, False, True]
    spy.calls.clear()
    model.embed(pixels(model, 2))
    assert spy.calls == [("dynamic", 2)] and model.runtime()["compiled"]


def test_a_failing_int8_build_leaves_the_model_working(
    spy: Spy,
    int8_here: list[torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(runner: Any, calibration: Any) -> Any:
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(int8, "quantize", broken)
    model = int8_model("bf16")
    calibrate(model)
    model.start_compile(background=False)  # does not raise
    assert not model.int8
    assert model.compiled.int8_note == "int8 failed (RuntimeError: no kernel for this op)"
    assert "staying bf16" in caplog.text
    assert model.compiled.dynamic is not None  # the plain compile
    assert not model.compiled._int8_busy
    assert model.embed(pixels(model, 3)).shape == (3, model.dim)


def test_a_plain_compile_is_upgraded_once_the_calibration_images_arrive(
    spy: Spy, int8_here: list[torch.Tensor]
) -> None:
    model = int8_model()
    model.start_compile(background=False)  # nothing embedded yet: compiles without int8
    assert model.compiled.dynamic is not None and not model.int8 and int8_here == []
    calibrate(model)  # the last of the images starts the int8 build in the background
    assert model.wait_compiled(timeout=60)
    assert model.int8, model.compiled.int8_note
    assert len(int8_here) == 1
    calibrate(model)  # once per model
    assert model.wait_compiled(timeout=60) and len(int8_here) == 1


def test_a_batch_size_that_keeps_coming_gets_its_own_int8_compile(
    spy: Spy,
    int8_here: list[torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    model = int8_model(batch_size=5)
    model.add_batch_size(3, background=False)
    assert model.compiled._static_asked == set()  # no int8 yet: nothing to compile
    calibrate(model)
    model.start_compile(background=False)
    model.add_batch_size(1, background=False)  # a batch of 1 is never compiled
    model.add_batch_size(5, background=False)  # compiled with the int8 build
    assert set(model.compiled.static) == {5}
    model.add_batch_size(3, background=True)
    assert model.wait_compiled(timeout=60)
    assert set(model.compiled.static) == {3, 5}
    model.add_batch_size(3, background=False)  # once per size
    assert caplog.text.count("tiny: int8 for batches of 3 in") == 1
    monkeypatch.setattr(int8, "MIN_COSINE", 1.01)  # no build passes this
    model.add_batch_size(4, background=False)
    assert set(model.compiled.static) == {3, 5}
    assert "int8 for batches of 4 moved the vectors too far" in caplog.text
    spy.calls.clear()
    model.embed(pixels(model, 3))
    model.embed(pixels(model, 4))
    assert spy.calls == [("static", 3), ("dynamic", 4)]  # 4 failed: the dynamic one serves


def test_calibration_images_are_collected_only_when_int8_may_run(spy: Spy) -> None:
    model = loaded(Tiny)
    model.tune("fp32", "on", "auto")  # int8 cannot run here (fp32)
    calibrate(model)
    assert model.compiled._samples == []
    assert not model.compiled._samples_ready.is_set()


def test_int8_samples_stop_at_the_calibration_size(spy: Spy, int8_here: list[torch.Tensor]) -> None:
    model = int8_model()
    model.embed(pixels(model, int8.SAMPLES - 1))
    assert not model.compiled._samples_ready.is_set()
    model.embed(pixels(model, 5))
    assert len(model.compiled._samples) == int8.SAMPLES
    assert model.compiled._samples_ready.is_set()
    np.testing.assert_array_equal(model.compiled._samples[-1], pixels(model, 5)[0])
