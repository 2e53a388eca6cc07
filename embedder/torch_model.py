"""What the neural backbones share: a network built with its weights (embedder.weights), run
batched on a device at a precision (embedder.runtime), and compiled once the work is worth it
(embedder.compiled). A backbone only says how to build its network (``_build``).

No torch import at module level: the registry imports the model classes to read their names
and sizes, and that must stay cheap.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from embedder.base import Model, WeightsInfo, l2_normalise
from embedder.compile_cache import weights_tag
from embedder.compiled import CompiledRunner
from embedder.config import COMPILE_MODES, check_choice
from embedder.preprocess import InputSpec, to_pixels
from embedder.runtime import Execution, channels_last_for_cnn, resolve_precision, tune_for_bf16
from embedder.weights import for_inference

if TYPE_CHECKING:
    from torch import nn


class TorchModel(Model):
    input_spec: ClassVar[InputSpec]
    # Whether precision 'auto' may pick bf16 for this network (where the hardware has it).
    auto_bf16: ClassVar[bool] = True

    def __init__(
        self,
        weights: str,
        *,
        cache_dir: Path | None = None,
        device: str = "cpu",
        compile_dir: Path | None = None,
    ) -> None:
        self.requested = weights  # the setting as given: a named source, a path or 'random'
        self.cache_dir = cache_dir
        self.weights = WeightsInfo(source="not loaded")
        self._module: nn.Module | None = None
        self._runner: nn.Module | None = None  # _module behind PixelInput (normalisation)
        self.execution = Execution(device)
        # What embed_candidates() runs at when nothing compiled answers (see tune()).
        self.candidate_precision = "fp32"
        self.compiled = CompiledRunner(
            self.name, self.execution, crop=self.input_spec.crop, compile_dir=compile_dir
        )

    @abstractmethod
    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        """Create the network with its weights (on CPU). Raises ModelLoadError."""

    @property
    def loaded(self) -> bool:
        return self._module is not None

    @property
    def device(self) -> str:
        return self.execution.device

    @property
    def precision(self) -> str:
        """What embed() runs at; see tune()."""
        return self.execution.precision

    @property
    def int8(self) -> bool:
        """Whether the compiled module in use runs int8 (embedder.int8)."""
        return self.compiled.int8

    def load(self) -> None:
        if self._module is not None:
            return
        module, info = self._build()
        self._module, self._runner = for_inference(module, self.input_spec, self.device)
        self.compiled.eager = self._runner
        self.compiled.weights_tag = weights_tag(self.requested, info.source)
        self.weights = info

    def tune(
        self,
        precision: str = "auto",
        compile_mode: str = "off",
        int8: str = "off",
        batch_size: int = 16,
    ) -> None:
        """Apply the speed settings to the loaded module (embedder.runtime, embedder.compiled).
        ``batch_size`` is the batch that bulk embedding uses (``ModelConfig.batch_size``).

        'fp32' leaves the module exactly as built: that is the reference the fidelity
        checks compare against. Call before the first embed(), from one thread.
        """
        import torch

        if self._module is None or self._runner is None:
            raise RuntimeError(f"{self.name}: call load() before tune()")
        check_choice(compile_mode, COMPILE_MODES, what="compile mode", setting="LOOKALIKE_COMPILE")
        self.execution.precision = resolve_precision(precision, self.device)
        self.candidate_precision = self.execution.precision
        if precision == "auto" and not self.auto_bf16:
            self.execution.precision = "fp32"
        # torch's thread count is per OS thread, and set where the models load
        # (LOOKALIKE_INFERENCE_THREADS); inference and compiles run on other threads.
        self.execution.threads = torch.get_num_threads()
        self.compiled.plan(compile_mode, int8, batch_size)
        if self.precision == "fp32":
            # 'auto' chose fp32: the CNN's layout still pays (embedder.runtime).
            if precision == "auto" and channels_last_for_cnn(self._module, self._runner):
                self.execution.channels_last = True
            return
        if tune_for_bf16(self._module, self._runner):
            self.execution.channels_last = True

    def runtime(self) -> dict[str, Any]:
        """How inference runs right now (for /api/v1/status): it changes once compiled."""
        return {
            "device": self.device,
            "precision": self.precision,
            "compiled": self.compiled.dynamic is not None,
            "int8": self.compiled.int8,
            "int8_note": self.compiled.int8_note,
        }

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """uint8 (crop, crop, 3) pixels; ``embed`` normalises (see embedder.preprocess)."""
        return to_pixels(image, self.input_spec)

    def embed(self, batch: list[np.ndarray]) -> np.ndarray:
        return self._embed(batch, candidates=False)

    def embed_candidates(self, batch: list[np.ndarray]) -> np.ndarray:
        """Where 'auto' keeps this network in fp32 for fidelity (``auto_bf16``) on hardware
        with native bf16, these rows run in bf16: EfficientNet-Lite0 took 124 ms instead of
        290 for 13 windows of a query (2 cores), at a cosine to fp32 of 0.996 or more, which
        changes which images are worth verifying by little and the verdict not at all."""
        return self._embed(batch, candidates=True)

    def _embed(self, batch: list[np.ndarray], *, candidates: bool) -> np.ndarray:
        import torch

        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._runner is None:
            raise RuntimeError(f"{self.name}: call load() before embed()")
        self.execution.pin_threads()
        if not candidates:  # int8 calibrates on what the searches embed as a whole
            self.compiled.observe(batch)
        x = self.execution.to_device(np.stack(batch))
        runner: Callable[[Any], Any] = self._runner
        precision = self.candidate_precision if candidates else self.execution.precision
        compiled = self.compiled.pick(len(batch))
        if compiled is not None:
            runner, precision = compiled, self.execution.precision
        with torch.inference_mode(), self.execution.autocast(precision):
            out = runner(x)
        return l2_normalise(out.float().cpu().numpy())

    def settle_eager(self) -> bool:
        """For a process that will run this model eager in bf16 to its end (an index run that
        the compile rule kept eager): keep the weights in bf16 only, half their memory (CLIP's
        image tower 350 -> 175 MB, ResNet-50 94 -> 47). Compiling is off from then on: its
        checks compare with the fp32 weights. True when the model runs on bf16 weights now; call
        between batches. The vectors keep a cosine >= 0.9999 to fp32 (tests/unit/embedder)."""
        import torch

        if self._module is None or self.precision != "bf16" or not self.compiled.renounce():
            return False
        self._module.to(torch.bfloat16)
        return True

    # -- compiling (embedder.compiled), what the pipeline calls ------------------------------
    def start_compile(self, *, background: bool = True) -> None:
        """Compile once, in the background or now; embed() stays eager until it is ready."""
        self.compiled.start(background=background)

    def expected_compile_s(self) -> float:
        """Seconds a compile started now is expected to take (0: none would run)."""
        return self.compiled.expected_compile_s()

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for compiles under way; True when a compiled module is in use."""
        return self.compiled.wait(timeout)

    def add_batch_size(self, batch: int, *, background: bool = True) -> None:
        """int8 only: compile for exactly ``batch`` rows too (a size that keeps coming)."""
        self.compiled.add_batch_size(batch, background=background)
