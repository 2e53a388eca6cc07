"""The int8 side of a model's compiled modules (``CompiledRunner`` in embedder.compiled, which
mixes this in): deciding whether int8 may run, collecting the images it calibrates on,
quantizing and compiling (embedder.int8), checking against fp32, and compiles for exactly
the batch sizes that keep coming. The timings are in embedder.compiled's docstring.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.compile_cache import BUILD_LOCK, ArtifactKey, ArtifactStore, begin
from embedder.config import INT8_MODES, check_choice
from embedder.runtime import Execution

if TYPE_CHECKING:
    from torch import nn

# The runner's logger: these steps are CompiledRunner's (one logger to configure or capture).
log = logging.getLogger("embedder.compiled")


class Int8Compiles:
    """State and steps of the int8 build; ``CompiledRunner`` sets the state in __init__."""

    name: str
    execution: Execution
    eager: nn.Module | None
    compile_mode: str
    dynamic: Callable[[Any], Any] | None
    batch_size: int
    static: dict[int, Callable[[Any], Any]]
    artifacts: ArtifactStore
    compile_s: float | None
    int8_mode: str
    int8: bool
    int8_note: str | None
    int8_s: float | None
    _static_asked: set[int]
    _static_pending: int
    _int8_source: tuple[nn.Module, Any, np.ndarray] | None
    _compile_lock: threading.Lock
    _compile_started: bool
    _int8_claimed: bool
    _samples: list[np.ndarray]
    _samples_ready: threading.Event
    _int8_busy: bool

    def key(self, *, int8: bool) -> ArtifactKey:
        raise NotImplementedError

    def _torch_compile(
        self, module: nn.Module, examples: list[Any], *, dynamic: bool = True
    ) -> tuple[Callable[[Any], Any], list[Any]]:
        raise NotImplementedError

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
        key = self.key(int8=True)
        loaded = False
        static: Callable[[Any], Any] | None = None
        try:
            samples = self.execution.to_device(np.stack(self._samples))
            calibration = samples[: int8_lib.CALIBRATION_IMAGES]
            check = samples[int8_lib.CALIBRATION_IMAGES :]
            # Made here, outside inference mode, as embed() makes its input (see _torch_compile).
            checks = [c.clone() for c in check.split(16)]
            with BUILD_LOCK:
                begin()
                # Reused only where calibration gave the same scales (inlined constants are
                # part of inductor's key); the check below holds either way.
                loaded = self.artifacts.load(key)
                quantized = int8_lib.quantize(self.eager, calibration)
                compiled, outputs = self._torch_compile(quantized, checks)
                got = [torch.cat([out.float() for out in outputs]).cpu().numpy()]
                if self.batch_size >= 2:  # a batch of 1 is never compiled (see pick)
                    static, static_got = self._compile_static(quantized, check, self.batch_size)
                    got.append(static_got)
                with torch.inference_mode():  # the fp32 reference: the module as built
                    want = torch.cat([self.eager(c).float() for c in checks]).cpu().numpy()
                cosine = min(int8_lib.min_cosine(g, want) for g in got)
                elapsed = time.perf_counter() - started
                if cosine >= int8_lib.MIN_COSINE:
                    self.artifacts.save(
                        key, cold_s=None if loaded else elapsed, warm_s=elapsed if loaded else None
                    )
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
            if loaded:
                self.artifacts.discard(key, "its int8 module failed the check against fp32")
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
            with BUILD_LOCK:
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
