"""Compile artifacts kept with the data (embedder/compile_cache.py) and how the compiled
runner uses them: keyed by everything the compiled code depends on, loaded before
compiling, discarded with a log line when anything is off, never trusted without a probe
check, and a directory that cannot be written leaves compiling in memory.

torch.compile is ``Spy`` (embedder_tiny_models) and torch's artifact (de)serialisation is
stubbed: no real compile here (a real round trip is the slow test at the end)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from embedder_tiny_models import Spy, Tiny, pixels

from embedder import compile_cache, compile_rule, compiled
from embedder.compile_cache import ArtifactKey, ArtifactStore, weights_tag
from embedder.torch_model import TorchModel

KEY = ArtifactKey(
    model="tiny",
    weights="random:random",
    torch="2.14.1",
    machine="cpu:AVX512",
    device="cpu",
    precision="bf16",
    batch_size=16,
    threads=2,
    int8=False,
)


class TorchCache:
    """Stands in for torch.compiler's save/load of cache artifacts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blob = b"compiled code for tiny"
        self.loaded: list[bytes] = []
        self.refuse = False
        monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (self.blob, None))
        monkeypatch.setattr(torch.compiler, "load_cache_artifacts", self._load)

    def _load(self, blob: bytes) -> Any:
        if self.refuse:
            raise EOFError("Ran out of input")
        self.loaded.append(blob)
        return object()


@pytest.fixture(autouse=True)
def inductor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading and compiling point inductor's cache at the test's directory (a process-wide
    variable): restored after each test."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> TorchCache:
    # Every compile after a load 'hits' inductor's cache (the counter moves on each read).
    monkeypatch.setattr(compiled, "cache_hits", itertools.count().__next__)
    return TorchCache(monkeypatch)


def test_every_field_of_the_key_changes_it() -> None:
    changes = {
        "model": "resnet50",
        "weights": "file:/w.pt:1:2",
        "torch": "2.15.0",
        "machine": "cpu:AVX2",
        "device": "cuda",
        "precision": "fp32",
        "batch_size": 8,
        "threads": 16,
        "int8": True,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(ArtifactKey)}
    digests = {dataclasses.replace(KEY, **{k: v}).digest() for k, v in changes.items()}  # type: ignore[arg-type]
    assert len(digests | {KEY.digest()}) == len(changes) + 1
    assert KEY.digest() == dataclasses.replace(KEY).digest()  # stable


def test_a_rewritten_weights_file_gets_a_new_tag(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"1" * 10)
    first = weights_tag(str(weights), "file")
    weights.write_bytes(b"2" * 11)
    assert weights_tag(str(weights), "file") != first
    assert weights_tag("imagenet", "imagenet") == "imagenet:imagenet"


def test_saved_artifacts_load_back_with_their_times(
    tmp_path: Path, cache: TorchCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "compiled")
    assert store.times(KEY) == compile_cache.CompileTimes() and not store.load(KEY)
    store.save(KEY, cold_s=61.234, warm_s=None)
    store.save(KEY, cold_s=None, warm_s=20.5)  # a later warm compile adds its time
    again = ArtifactStore(tmp_path / "compiled")
    assert again.times(KEY) == compile_cache.CompileTimes(cold_s=61.23, warm_s=20.5)
    assert again.load(KEY) and cache.loaded == [cache.blob]
    assert again.inductor_dir == tmp_path / "compiled" / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(again.inductor_dir)
    assert not again.load(dataclasses.replace(KEY, threads=4))  # another key: nothing


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file())


def test_a_corrupt_artifact_is_discarded_with_a_log_line(
    tmp_path: Path, cache: TorchCache, caplog: pytest.LogCaptureFixture
) -> None:
    store = ArtifactStore(tmp_path)
    store.save(KEY, cold_s=30, warm_s=None)
    blob = tmp_path / f"{KEY.stem}.bin"
    blob.write_bytes(blob.read_bytes()[:-3] + b"xyz")
    assert not store.load(KEY) and cache.loaded == []
    assert "discarding compile artifacts" in caplog.text and "checksum mismatch" in caplog.text
    assert _files(tmp_path) == []  # rebuilt by the next compile


def test_an_artifact_torch_refuses_is_discarded(
    tmp_path: Path, cache: TorchCache, caplog: pytest.LogCaptureFixture
) -> None:
    store = ArtifactStore(tmp_path)
    store.save(KEY, cold_s=30, warm_s=None)
    cache.refuse = True
    assert not store.load(KEY)
    assert "torch refused it (EOFError: Ran out of input)" in caplog.text
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "record",
    [
        "{not json",
        json.dumps(
            {"format": compile_cache.FORMAT, "key": {**dataclasses.asdict(KEY), "torch": "2.9"}}
        ),
        json.dumps({"format": 0, "key": dataclasses.asdict(KEY)}),
        json.dumps([1, 2]),
    ],
)
def test_a_record_for_another_setting_or_unreadable_is_discarded(
    tmp_path: Path, cache: TorchCache, record: str
) -> None:
    store = ArtifactStore(tmp_path)
    store.save(KEY, cold_s=30, warm_s=None)
    (tmp_path / f"{KEY.stem}.json").write_text(record)
    assert not store.load(KEY) and cache.loaded == []
    assert store.times(KEY) == compile_cache.CompileTimes()
    assert _files(tmp_path) == []


def test_an_unwritable_directory_compiles_in_memory(
    tmp_path: Path, cache: TorchCache, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").write_text("a file where the directory should be")
    store = ArtifactStore(tmp_path / "data" / "compiled")
    assert not store.writable and store.inductor_dir is None
    store.save(KEY, cold_s=30, warm_s=None)  # nothing, no crash
    assert not store.load(KEY)
    assert "cannot be created" in caplog.text and "compiling in memory" in caplog.text


def test_a_directory_that_turns_read_only_stops_saving(
    tmp_path: Path,
    cache: TorchCache,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = ArtifactStore(tmp_path)

    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(compile_cache, "_write", refuse)
    store.save(KEY, cold_s=30, warm_s=None)
    assert not store.writable and store.inductor_dir is None
    assert "cannot keep compile artifacts" in caplog.text and "compiling in memory" in caplog.text


# -- the compiled runner -------------------------------------------------------------------
def model_in(compile_dir: Path) -> TorchModel:
    model = Tiny("random", compile_dir=compile_dir)
    model.load()
    model.tune("fp32", "on", "off", batch_size=4)
    return model


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    monkeypatch.setattr(torch, "compile", spy)
    return spy


def test_the_second_process_compiles_from_the_artifacts(
    tmp_path: Path, cache: TorchCache, spy: Spy
) -> None:
    first = model_in(tmp_path)
    assert first.expected_compile_s() == compile_rule.DEFAULT_COMPILE_S  # nothing recorded
    first.start_compile(background=False)
    assert first.wait_compiled(timeout=5) and not first.compiled.from_artifacts
    key = first.compiled.key(int8=False)
    assert key.model == "tiny" and key.weights == "random:random" and key.batch_size == 4
    assert first.compiled.artifacts.times(key).cold_s is not None

    second = model_in(tmp_path)  # as after a reboot: a new process, the same data directory
    assert second.expected_compile_s() == first.compiled.artifacts.times(key).cold_s
    second.start_compile(background=False)
    assert second.wait_compiled(timeout=5) and second.compiled.from_artifacts
    assert cache.loaded == [cache.blob]
    times = second.compiled.artifacts.times(key)
    assert times.warm_s is not None and second.expected_compile_s() == 0.0  # started
    assert model_in(tmp_path).expected_compile_s() == times.warm_s


def test_artifacts_the_compile_did_not_use_are_saved_afresh(
    tmp_path: Path, cache: TorchCache, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_in(tmp_path).start_compile(background=False)
    cache.blob = b"what this torch compiled now"
    monkeypatch.setattr(compiled, "cache_hits", lambda: 7)  # loaded, then no hit at all
    model = model_in(tmp_path)
    model.start_compile(background=False)
    assert model.wait_compiled(timeout=5) and not model.compiled.from_artifacts
    key = model.compiled.key(int8=False)
    assert (tmp_path / f"{key.stem}.bin").read_bytes() == cache.blob
    assert model.compiled.artifacts.times(key).warm_s is None  # its time counts as cold


def test_a_compile_that_fails_the_probe_check_stays_eager_and_drops_its_artifacts(
    tmp_path: Path,
    cache: TorchCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(torch, "compile", Spy())
    model_in(tmp_path).start_compile(background=False)  # a good compile, saved
    assert len(_files(tmp_path)) == 2

    def wrong(module: Any, **kwargs: Any) -> Any:  # artifacts from a 'different' model
        return lambda x: -module(x)

    monkeypatch.setattr(torch, "compile", wrong)
    caplog.set_level(logging.INFO, logger="embedder.compiled")
    model = model_in(tmp_path)
    model.start_compile(background=False)
    assert not model.wait_compiled(timeout=5) and model.compiled.dynamic is None
    assert (
        "(from stored artifacts) moved the vectors" in caplog.text
        and "staying eager" in caplog.text
    )
    assert _files(tmp_path) == []
    # Eager still answers, with the right vectors.
    batch = pixels(model, 3)
    assert model.embed(batch).shape == (3, Tiny.dim)


def test_without_a_directory_the_runner_compiles_in_memory(cache: TorchCache, spy: Spy) -> None:
    model = Tiny("random")
    model.load()
    model.tune("fp32", "on", "off")
    model.start_compile(background=False)
    assert model.wait_compiled(timeout=5) and not model.compiled.from_artifacts
    assert model.compiled.artifacts.inductor_dir is None


def test_compile_off_expects_no_compile_and_leaves_no_directory(tmp_path: Path) -> None:
    model = Tiny("random", compile_dir=tmp_path / "compiled")
    model.load()
    model.tune("fp32", "off", "off")
    assert model.expected_compile_s() == 0.0
    model.start_compile(background=False)
    assert not (tmp_path / "compiled").exists()


CHILD = r"""
import json, sys
from pathlib import Path
from embedder_tiny_models import TinyResNet
model = TinyResNet("random", compile_dir=Path(sys.argv[1]))
model.load()
model.tune("fp32", "on", "off", batch_size=4)
model.start_compile(background=False)
done = {"compiled": model.wait_compiled(), "from_artifacts": model.compiled.from_artifacts}
print(json.dumps(done))
"""


@pytest.mark.slow
def test_a_real_compile_reloads_from_its_artifacts_in_a_new_process(tmp_path: Path) -> None:
    """Two fresh processes, each with an empty $TMPDIR and the inductor cache deleted in
    between: the second one compiles from the artifacts, and passes the probe check."""
    here = Path(__file__).parent
    root = here.parents[2]
    runs = []
    for i in range(2):
        shutil.rmtree(tmp_path / "compiled" / "inductor", ignore_errors=True)
        (tmp_path / f"tmp{i}").mkdir()
        env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
        env.update(TMPDIR=str(tmp_path / f"tmp{i}"), PYTHONPATH=f"{root}{os.pathsep}{here}")
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path / "compiled")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    assert runs == [
        {"compiled": True, "from_artifacts": False},
        {"compiled": True, "from_artifacts": True},
    ]
    (record,) = (tmp_path / "compiled").glob("tiny-resnet-fp32-*.json")
    times = json.loads(record.read_text())
    assert times["cold_s"] > 0 and times["warm_s"] > 0 and times["bytes"] > 0
