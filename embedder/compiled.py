"""A model's compiled modules: torch.compile for any batch of 2 or more, the int8 build and
its check, and compiles for exactly the batch sizes that keep coming. ``TorchModel`` has one
``CompiledRunner`` and asks it, batch by batch, which module to run (``pick``). torch is
imported inside the methods: the registry imports the model classes, and must stay cheap.

Speed, measured as in embedder.runtime (2 AVX-512 + bf16 cores, batch 16, random weights,
img/s CLIP ViT-B/32 / ResNet-50 (GeM), +-15 %), from the tuned eager module (66 / 65):

    + torch.compile (inductor, freezing)            88-91 / 110-112  (static or dynamic batch)
    + int8 (torchao PT2E, VNNI; see embedder.int8)  126-130 / 118-126 (bf16 measured beside
                                                    it in one run: 71-85 / 85-103)
    AOTInductor package (bf16 weights)              14 / 88    (fast to load, slow CLIP)

Compiled, both run at the measured bf16 peak (~930 GFLOP/s: CLIP is 8.8 GFLOP an image,
ResNet-50 8.2). torch.compile costs 15-20 s a model with a warm inductor cache, ~35 s cold,
so it is never on the start-up path. It compiles once per model with a dynamic batch size,
which serves every batch of 2 or more as fast as a static compile (batch 8, ms: CLIP
120 -> 91, ResNet 129 -> 74); batch 1 stays eager (no gain there, and a size-1 call would
force a second, specialised compile). With ``compile='auto'`` it runs in a background thread
when an index run is long enough for it to pay (embedder.compile_rule) or under sustained
concurrent search load; until it is ready, the eager bf16 module answers. Fidelity: cosine
to the fp32 vector >= 0.9995 (random weights); bench/index_throughput.py checks every image
of its set.

int8 (``int8='auto'``, the default, with compiling on a CPU with VNNI and native bf16) goes
past the bf16 peak: the compile quantizes the model instead, calibrated and checked on the
first 64 images it embedded (embedder.int8). A compile that starts before those images exist
compiles bf16 and is upgraded once they have been embedded. int8 compiles twice: for any
batch, and for exactly ``batch_size`` rows, which indexing sends (see _build_int8: a
dynamic-batch int8 compile repacks weights on every call); a server under load adds its full
search batch (add_batch_size).

Kept with the data (embedder.compile_cache): torch's portable cache artifacts, keyed by model,
weights, torch, CPU, precision, batch, threads and int8, and inductor's cache directory (the
built C++ kernels, which the artifacts do not carry), both under ``<data>/compiled``, so a
reboot does not start from nothing. Whatever it came from, a compiled module is used only
if a probe batch's vectors keep a cosine >= 0.995 to the eager fp32 module's. EffNet-Lite0
(fp32, random weights), one fresh process each, 2 cores shared with other work (load 2-3.5),
two series (bench/compile_times.py), s:

    cold: empty data directory, empty $TMPDIR             75.7 / 82.4
    artifacts only (inductor/ deleted, empty $TMPDIR)     57.5 / 65.4
    artifacts + inductor/ (a reboot: empty $TMPDIR)       44.4 / 44.6

(Those traced one graph. EffNet-Lite0 now compiles a second, for batches of 16 and more (see
_compile_plain): in the whole-process bench at load 4.5, cold 98.7 s, from the data 74.9 s.)

What stays is torch's own work, which no cache covers with freezing on: Dynamo's trace,
AOTAutograd's capture (its cache refuses frozen graphs) and the freezing passes (~45 s of the
cold compile under load, by cProfile). Why not AOTInductor, which loads in seconds: its bf16
CLIP ran at 14 img/s (table above) and it cannot run the int8 build as checked here;
without freezing (so AOTAutograd's cache works) the compiled module loses oneDNN's pre-packed
weights. int8 artifacts are reused only where calibration gave the same scales (inlined
constants are part of inductor's key), so mostly a second run over the same first images.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder import compile_rule
from embedder.compile_cache import (
    BUILD_LOCK,
    ArtifactKey,
    ArtifactStore,
    begin,
    cache_hits,
    machine_tag,
)
from embedder.compiled_int8 import Int8Compiles
from embedder.int8 import min_cosine
from embedder.runtime import Execution

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# How long a background compile waits for the images int8 calibrates on (embedder.int8)
# before it compiles without int8 (and upgrades once they arrive).
INT8_SAMPLE_WAIT_S = 60.0
# The compiled module's vectors for the probe batch against the eager fp32 module's: below
# this, the compile (from artifacts or not) is not used, and its artifacts are discarded.
PROBE_MIN_COSINE = 0.995
PROBE_ROWS = 4  # a batch of 4: sizes 0 and 1 would be specialised, not traced as dynamic
# int8 quantizes and compiles twice (embedder.compiled_int8): never recorded, it is
# expected to take this many plain compiles.
INT8_COMPILES = 2.0


class CompiledRunner(Int8Compiles):
    """One model's (``name``: logs, thread names); its inputs are crop x crop uint8 pixels.
    ``compile_dir``: where compile artifacts are kept (embedder.compile_cache), or None."""

    def __init__(
        self, name: str, execution: Execution, *, crop: int, compile_dir: Path | None = None
    ) -> None:
        self.name = name
        self.execution = execution
        self.crop = crop
        self.artifacts = ArtifactStore(compile_dir)
        self.weights_tag = "unknown"  # set at load (compile_cache.weights_tag)
        # The model's module behind PixelInput, set at load: what is compiled, and as built
        # (no autocast), the fp32 reference int8 is checked against.
        self.eager: nn.Module | None = None
        self.compile_mode = "off"
        self.dynamic: Callable[[Any], Any] | None = None  # compiled for any batch of 2 or more
        # int8 only: compiles for exactly these batch sizes (see _build_int8, add_batch_size).
        self.batch_size = 16
        self.static: dict[int, Callable[[Any], Any]] = {}
        self._static_asked: set[int] = set()
        self._static_pending = 0  # add_batch_size compiles under way
        # After an int8 build: the quantized module, its check inputs and their fp32 vectors,
        # for compiling (and checking) more batch sizes later.
        self._int8_source: tuple[nn.Module, Any, np.ndarray] | None = None
        self._compile_lock = threading.Lock()
        self._compile_started = False
        self.compile_s: float | None = None  # how long compiling took, once it finished
        self.from_artifacts = False  # whether the plain compile started from stored artifacts
        # int8 (embedder.int8): asked for, and whether the compiled module runs it.
        self.int8_mode = "off"
        self.int8 = False
        self.int8_note: str | None = None  # why int8 is not used, when it was asked for
        self.int8_s: float | None = None  # how long quantizing and compiling int8 took
        self._int8_claimed = False  # one attempt per model
        self._samples: list[np.ndarray] = []  # the first inputs embedded, to calibrate int8
        self._samples_ready = threading.Event()
        self._int8_busy = False

    def plan(self, compile_mode: str, int8: str, batch_size: int) -> None:
        """The settings, at TorchModel.tune (``compile_mode`` checked there)."""
        self.compile_mode = compile_mode
        self.batch_size = batch_size
        self._plan_int8(int8)

    def key(self, *, int8: bool) -> ArtifactKey:
        """What this model's compiled code depends on (embedder.compile_cache)."""
        import torch

        return ArtifactKey(
            model=self.name,
            weights=self.weights_tag,
            torch=torch.__version__,
            machine=machine_tag(self.execution.device),
            device=self.execution.device,
            precision=self.execution.precision,
            batch_size=self.batch_size,
            threads=self.execution.threads,
            int8=int8,
        )

    def expected_compile_s(self) -> float:
        """Seconds compiling is expected to take now, from this machine's records (warm from
        artifacts when they are there, else cold); 0 when it will not run or already has."""
        if self.compile_mode == "off" or self.eager is None or self._compile_started:
            return 0.0
        int8 = self.int8_mode == "auto"
        record = self.artifacts.record(self.key(int8=int8)) or {}
        times = self.artifacts.times(self.key(int8=int8))
        if record.get("sha256") and times.warm_s is not None:
            return times.warm_s
        if times.cold_s is not None:
            return times.cold_s
        return compile_rule.DEFAULT_COMPILE_S * (INT8_COMPILES if int8 else 1.0)

    def pick(self, rows: int) -> Callable[[Any], Any] | None:
        """The compiled module for a batch of ``rows``, or None: the eager one serves it."""
        static = self.static.get(rows)
        if static is not None:
            return static
        if self.dynamic is not None and rows >= 2:
            return self.dynamic
        return None

    def observe(self, batch: list[np.ndarray]) -> None:
        """Called with every batch the model embeds: int8 calibrates on the first ones."""
        if self.int8_mode == "auto" and not self._samples_ready.is_set():
            self._collect(batch)

    def renounce(self) -> bool:
        """Never compile this model from now on (its weights are about to change, see
        TorchModel.settle_eager); False, and nothing changes, once a compile has started."""
        with self._compile_lock:
            if self._compile_started:
                return False
            self.plan("off", "off", self.batch_size)
            self._samples.clear()
            return True

    # -- torch.compile ----------------------------------------------------------------------
    def start(self, *, background: bool = True) -> None:
        """Compile the module, once per model (see the module docstring). In the background,
        the model keeps using the eager module until the compiled one is ready."""
        if self.compile_mode == "off" or self.eager is None:
            return
        with self._compile_lock:
            if self._compile_started:
                return
            self._compile_started = True
        if background:
            threading.Thread(
                target=self._compile,
                args=(INT8_SAMPLE_WAIT_S,),
                name=f"compile-{self.name}",
                daemon=True,
            ).start()
        else:
            self._compile(0.0)

    def wait(self, timeout: float | None = None) -> bool:
        """For benchmarks, tests and shutdown: wait until a started compile (and any int8
        build or batch-size compile under way) finished. True when a compiled module is in
        use."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (
            (self._compile_started and self.compile_s is None)
            or self._int8_busy
            or self._static_pending
        ):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return self.dynamic is not None

    def _compile(self, wait_for_samples: float) -> None:
        """int8 when it is asked for and the calibration images are there (or arrive within
        ``wait_for_samples`` seconds), else the plain compile; the plain one is upgraded to
        int8 later, when enough images have been embedded (``_collect``)."""
        self.execution.pin_threads()
        started = time.perf_counter()
        if (
            self.int8_mode == "auto"
            and self._samples_ready.wait(wait_for_samples)
            and self._claim_int8()
            and self._build_int8()
        ):
            self.compile_s = time.perf_counter() - started
            return
        self._compile_plain()
        self.compile_s = time.perf_counter() - started
        if self._claim_int8():
            self._build_int8()

    def _compile_plain(self) -> None:
        """Compile for any batch of 2 or more, from the stored artifacts when they are there;
        used only when its vectors for the probe batches match the eager fp32 module's.

        Traced at 4 rows, then run at ``batch_size`` rows too, inside the compile: a network
        whose graph depends on the batch size recompiles there, frozen, instead of at the
        index's first full batch, unfrozen, in the embedding thread (EffNet-Lite0: its
        depthwise convolutions pick their kernel by batch size, a guard of 2-15 rows)."""
        import torch

        assert self.eager is not None
        key = self.key(int8=False)
        sizes = sorted({PROBE_ROWS, self.batch_size} - {0, 1})
        probes = [self.execution.to_device(probe_pixels(self.crop, rows)) for rows in sizes]
        try:
            with BUILD_LOCK:
                begin()
                loaded = self.from_artifacts = self.artifacts.load(key)
                hits, started = cache_hits(), time.perf_counter()
                compiled, outputs = self._torch_compile(self.eager, probes)
                elapsed = time.perf_counter() - started
                if loaded and 0 <= hits == cache_hits():  # stale: nothing in them was used
                    loaded = self.from_artifacts = False
                with torch.inference_mode():  # the reference: the module as built
                    cosine = min(
                        min_cosine(out.float().cpu().numpy(), self.eager(p).float().cpu().numpy())
                        for out, p in zip(outputs, probes, strict=True)
                    )
                if cosine >= PROBE_MIN_COSINE:
                    self.artifacts.save(
                        key, cold_s=None if loaded else elapsed, warm_s=elapsed if loaded else None
                    )
        except Exception as exc:  # no C++ compiler, unsupported op...: eager still works
            log.warning("%s: torch.compile failed, staying eager (%s)", self.name, exc)
            return
        if cosine < PROBE_MIN_COSINE:
            log.warning(
                "%s: the compiled module%s moved the vectors (min cosine to eager fp32 %.4f < "
                "%s on a probe batch); staying eager",
                self.name,
                " (from stored artifacts)" if loaded else "",
                cosine,
                PROBE_MIN_COSINE,
            )
            if loaded:
                self.artifacts.discard(key, "its compiled module failed the probe check")
            return
        self.dynamic = compiled
        log.info(
            "%s: compiled in %.1f s%s (probe cosine to eager fp32 %.4f)",
            self.name,
            elapsed,
            " from stored artifacts" if loaded else "",
            cosine,
        )

    def _torch_compile(
        self, module: nn.Module, examples: list[Any], *, dynamic: bool = True
    ) -> tuple[Callable[[Any], Any], list[Any]]:
        """torch.compile ``module`` (dynamic batch, or the examples' shape only) and run it on
        ``examples`` (returning its outputs; this first call is what compiles). They must be
        made the way ``embed`` makes its input (outside inference mode, not views): a call
        that fails a guard recompiles, and a recompile outside this method has no freezing."""
        import torch
        import torch._inductor.config as inductor_config

        # inductor's own cache (the built C++ kernels) with the artifacts, not in /tmp.
        self.artifacts.use_inductor_dir()
        # freezing: weights become constants, so oneDNN gets pre-packed bf16 (or int8)
        # weights; one compile worker: the cores are busy embedding meanwhile.
        with inductor_config.patch(freezing=True, compile_threads=1):
            compiled: Callable[[Any], Any] = torch.compile(module, dynamic=dynamic)
            with torch.inference_mode(), self.execution.autocast():
                outputs = [compiled(x) for x in examples]
        return compiled, outputs


def probe_pixels(crop: int, rows: int = PROBE_ROWS) -> np.ndarray:
    """A fixed batch of smooth random images (uint8, rows x crop x crop x 3): the same in
    every process, unlike anything an index run embeds first."""
    rng = np.random.default_rng(1234)
    coarse = rng.integers(0, 256, (rows, 8, 8, 3), dtype=np.uint8)
    step = -(-crop // 8)
    return np.ascontiguousarray(coarse.repeat(step, 1).repeat(step, 2)[:, :crop, :crop])
