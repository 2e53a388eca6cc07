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
when a bulk index run starts or when concurrent searches first share a batch; until it is
ready, the eager bf16 module answers. Fidelity: cosine to the fp32 vector >= 0.9995 (random
weights); bench/index_throughput.py checks every image of its set.

int8 (``int8='auto'``, the default, with compiling on a CPU with VNNI and native bf16) goes
past the bf16 peak: the compile quantizes the model instead, calibrated and checked on the
first 64 images it embedded (embedder.int8). A compile that starts before those images exist
compiles bf16 and is upgraded once they have been embedded. int8 compiles twice: for any
batch, and for exactly ``batch_size`` rows, which indexing sends (see _build_int8: a
dynamic-batch int8 compile repacks weights on every call); a server under load adds its full
search batch (add_batch_size).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.config import INT8_MODES, check_choice
from embedder.runtime import Execution

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# How long a background compile waits for the images int8 calibrates on (embedder.int8)
# before it compiles without int8 (and upgrades once they arrive).
INT8_SAMPLE_WAIT_S = 60.0
# One compile or int8 build at a time in the process: torch.export and dynamo keep global
# tracing state (two int8 builds in parallel threads failed, measured), and the cores are
# busy embedding meanwhile anyway.
_BUILD_LOCK = threading.Lock()


class CompiledRunner:
    """One model's (``name``: logs, thread names); its inputs are crop x crop uint8 pixels."""

    def __init__(
        self, name: str, execution: Execution, *, crop: int, cache_dir: Path | None = None
    ) -> None:
        self.name = name
        self.execution = execution
        self.crop = crop
        self.cache_dir = cache_dir
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
        assert self.eager is not None
        started = time.perf_counter()
        # A batch of 4: sizes 0 and 1 would be specialised, not traced as a dynamic size.
        dummy = self.execution.to_device(np.zeros((4, self.crop, self.crop, 3), np.uint8))
        try:
            with _BUILD_LOCK:
                compiled, _ = self._torch_compile(self.eager, [dummy])
        except Exception as exc:  # no C++ compiler, unsupported op...: eager still works
            log.warning("%s: torch.compile failed, staying eager (%s)", self.name, exc)
            return
        self.dynamic = compiled
        log.info("%s: compiled in %.1f s", self.name, time.perf_counter() - started)

    def _torch_compile(
        self, module: nn.Module, examples: list[Any], *, dynamic: bool = True
    ) -> tuple[Callable[[Any], Any], list[Any]]:
        """torch.compile ``module`` (dynamic batch, or the examples' shape only) and run it on
        ``examples`` (returning its outputs; this first call is what compiles). They must be
        made the way ``embed`` makes its input (outside inference mode, not views): a call
        that fails a guard recompiles, and a recompile outside this method has no freezing."""
        import torch
        import torch._inductor.config as inductor_config

        if self.cache_dir is not None:
            # Keep inductor's cache with the model weights, where it survives /tmp cleaning.
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.cache_dir / "inductor"))
        # freezing: weights become constants, so oneDNN gets pre-packed bf16 (or int8)
        # weights; one compile worker: the cores are busy embedding meanwhile.
        with inductor_config.patch(freezing=True, compile_threads=1):
            compiled: Callable[[Any], Any] = torch.compile(module, dynamic=dynamic)
            with torch.inference_mode(), self.execution.autocast():
                outputs = [compiled(x) for x in examples]
        return compiled, outputs

    # -- int8 -------------------------------------------------------------------------------
    def _plan_int8(self, int8: str) -> None:
        """Decide, at tune(), whether compiling this model may go int8 (embedder.int8)."""
        check_choice(int8, INT8_MODES, what="int8 mode", setting="LOOKALIKE_INT8")
        self.int8_mode = "off"
        self.int8_note = None
        if int8 == "off" or self.compile_mode == "off":
            return
        from embedder import int8 as int8_lib

        reason = int8_lib.unavailable_reason(self.execution.device, self.execution.precision)
        if reason is not None:
            self.int8_note = reason
            log.info("%s: no int8 (%s)", self.name, reason)
            return
        self.int8_mode = "auto"

    def _collect(self, batch: list[np.ndarray]) -> None:
        """Keep the first inputs embedded, to calibrate and check int8 on."""
        from embedder.int8 import SAMPLES

        with self._compile_lock:
            self._samples.extend(batch[: SAMPLES - len(self._samples)])
            full = len(self._samples) >= SAMPLES
        if not full:
            return
        self._samples_ready.set()
        # The plain compile may have finished before there was anything to calibrate on.
        if self.compile_s is not None and self._claim_int8():
            threading.Thread(target=self._build_int8, name=f"int8-{self.name}", daemon=True).start()

    def _claim_int8(self) -> bool:
        """True once per model: the caller builds int8 (and must call _build_int8)."""
        with self._compile_lock:
            if (
                self._int8_claimed
                or self.int8_mode != "auto"
                or not self._compile_started
                or not self._samples_ready.is_set()
            ):
                return False
            self._int8_claimed = self._int8_busy = True
            return True

    def _build_int8(self) -> bool:
        """Quantize, compile and check against fp32; swap the result in when it passes.
        Never raises: any failure leaves the model as it was, with a warning.

        The quantized model is compiled twice: for any batch of 2 or more, and for exactly
        ``batch_size`` rows, the batch that indexing sends. Compiled for a dynamic batch,
        the int8 weights are packed without knowing it, and oneDNN repacks some of them on
        every call to suit the real one: on ResNet-50 at batch 16, 47 of 116 ms a batch
        (124 img/s). Compiled for the batch, it runs at ~200 img/s (CLIP 128 -> 137).
        """
        import torch

        from embedder import int8 as int8_lib

        assert self.eager is not None
        self.execution.pin_threads()
        started = time.perf_counter()
        static: Callable[[Any], Any] | None = None
        try:
            samples = self.execution.to_device(np.stack(self._samples))
            calibration = samples[: int8_lib.CALIBRATION_IMAGES]
            check = samples[int8_lib.CALIBRATION_IMAGES :]
            # Made here, outside inference mode, as embed() makes its input (see _torch_compile).
            checks = [c.clone() for c in check.split(16)]
            with _BUILD_LOCK:
                quantized = int8_lib.quantize(self.eager, calibration)
                compiled, outputs = self._torch_compile(quantized, checks)
                got = [torch.cat([out.float() for out in outputs]).cpu().numpy()]
                if self.batch_size >= 2:  # a batch of 1 is never compiled (see pick)
                    static, static_got = self._compile_static(quantized, check, self.batch_size)
                    got.append(static_got)
            with torch.inference_mode():  # the fp32 reference: the module as built
                want = torch.cat([self.eager(c).float() for c in checks]).cpu().numpy()
            cosine = min(int8_lib.min_cosine(g, want) for g in got)
        except Exception as exc:
            self.int8_note = f"int8 failed ({type(exc).__name__}: {str(exc)[:200]})"
            log.warning("%s: %s; staying %s", self.name, self.int8_note, self.execution.precision)
            return False
        finally:
            self._samples = []  # ~150 KB an image: not kept once used
            self._int8_busy = False
        self.int8_s = time.perf_counter() - started
        if cosine < int8_lib.MIN_COSINE:
            self.int8_note = (
                f"int8 changed the vectors too much (min cosine to fp32 {cosine:.4f} < "
                f"{int8_lib.MIN_COSINE} on {len(want)} check images)"
            )
            log.warning("%s: %s; staying %s", self.name, self.int8_note, self.execution.precision)
            return False
        self.dynamic = compiled
        self._static_asked.add(self.batch_size)
        if static is not None:
            self.static[self.batch_size] = static
        self._int8_source = (quantized, check, want)
        self.int8 = True
        log.info(
            "%s: int8 in %.1f s (min cosine to fp32 %.4f on %d check images)",
            self.name,
            self.int8_s,
            cosine,
            len(want),
        )
        return True

    def _compile_static(
        self, quantized: nn.Module, check: Any, batch: int
    ) -> tuple[Callable[[Any], Any], np.ndarray]:
        """Compile ``quantized`` for exactly ``batch`` rows (a copy: the dynamic compile keeps
        its own); returns it and its vectors for ``check``, whose rows are repeated to fill
        whole batches (indexing with a tensor copies: no views, see _torch_compile)."""
        import torch

        rows = torch.arange(-(-len(check) // batch) * batch) % len(check)
        examples = [check[r] for r in rows.split(batch)]
        compiled, outputs = self._torch_compile(copy.deepcopy(quantized), examples, dynamic=False)
        got = torch.cat([out.float() for out in outputs])[: len(check)].cpu().numpy()
        return compiled, got

    def add_batch_size(self, batch: int, *, background: bool = True) -> None:
        """int8 only: compile for exactly ``batch`` rows too, once per size, checked against
        fp32 as the first compiles were. For a batch size that keeps coming: a server's full
        search batches (``Embedder.embed_inputs``). Until it is ready, the dynamic compile
        serves that size. No-op when int8 is not in use."""
        with self._compile_lock:
            if (
                not self.int8
                or self._int8_source is None
                or batch < 2
                or batch in self._static_asked
            ):
                return
            self._static_asked.add(batch)
            self._static_pending += 1
        if background:
            threading.Thread(
                target=self._add_static,
                args=(batch,),
                name=f"int8-{self.name}-{batch}",
                daemon=True,
            ).start()
        else:
            self._add_static(batch)

    def _add_static(self, batch: int) -> None:
        from embedder import int8 as int8_lib

        assert self._int8_source is not None
        quantized, check, want = self._int8_source
        self.execution.pin_threads()
        started = time.perf_counter()
        try:
            with _BUILD_LOCK:
                compiled, got = self._compile_static(quantized, check, batch)
            cosine = int8_lib.min_cosine(got, want)
        except Exception as exc:
            log.warning(
                "%s: int8 for batches of %d failed (%s: %s); they keep the dynamic compile",
                self.name,
                batch,
                type(exc).__name__,
                str(exc)[:200],
            )
            return
        finally:
            with self._compile_lock:
                self._static_pending -= 1
        if cosine < int8_lib.MIN_COSINE:
            log.warning(
                "%s: int8 for batches of %d moved the vectors too far (min cosine to fp32 "
                "%.4f); they keep the dynamic compile",
                self.name,
                batch,
                cosine,
            )
            return
        self.static[batch] = compiled
        log.info(
            "%s: int8 for batches of %d in %.1f s (min cosine to fp32 %.4f)",
            self.name,
            batch,
            time.perf_counter() - started,
            cosine,
        )
