"""What the three neural backbones share: device handling, seeding, batched inference, and
the speed settings (precision, memory format, compilation), all in this one place.

No torch import at module level: the registry imports the model classes to read their names
and sizes, and that must stay cheap.

Speed, as measured on 2 AVX-512 (+bf16) cores, batch 16, random weights (same compute);
img/s for CLIP ViT-B/32 / ResNet-50 (GeM), other tenants on the cores, so +-15 %:

    eager fp32 (the baseline)                       16-21 / 21
    eager bf16 autocast                              8 / 50    (CLIP: see FusedSelfAttention)
    + fused attention, channels_last (ResNet)       66 / 65
    + torch.compile (inductor, freezing)            88-91 / 110-112  (static or dynamic batch)
    + int8 (torchao PT2E, VNNI; see embedder.int8)  126-130 / 118-126 (bf16 measured beside
                                                    it in one run: 71-85 / 85-103)
    ONNX Runtime 1.32 fp32 (no bf16 CPU kernels)    21 / 12.5
    AOTInductor package (bf16 weights)              14 / 88    (fast to load, slow CLIP)

Compiled, both run at the measured bf16 peak (~930 GFLOP/s: CLIP is 8.8 GFLOP an image,
ResNet-50 8.2). So: bf16 autocast where the hardware has native bf16 (AVX512-BF16 or AMX on
CPU, any bf16-capable GPU), fp32 elsewhere; fused attention for CLIP; channels_last for the
CNNs; ONNX Runtime is not used. torch.compile costs 15-20 s a model with a warm inductor
cache, ~35 s cold, so it is never on the start-up path. It compiles once per model with a
dynamic batch size, which serves every batch of 2 or more as fast as a static compile
(batch 8, ms: CLIP 120 -> 91, ResNet 129 -> 74); batch 1 stays eager (no gain there, and a
size-1 call would force a second, specialised compile). With ``compile='auto'`` it runs in
a background thread when a bulk index run starts or when concurrent searches first share a
batch; until it is ready, the eager bf16 module answers. Fidelity: cosine to the fp32
vector >= 0.9995 (random weights); bench/index_throughput.py checks every image of its set.
EfficientNet-Lite0 stays fp32 under 'auto' (see tune()).

int8 (``int8='auto'``, the default, with compiling on a CPU with VNNI and native bf16) goes
past the bf16 peak: the compile quantizes the model instead, calibrated on the first 64
images it embedded, and keeps it only when its vectors stay within cosine 0.998 of fp32 on
half of them (embedder.int8). A compile that starts before those images exist compiles bf16
and is upgraded once they have been embedded. int8 compiles twice: for any batch, and for
exactly ``batch_size`` rows, which indexing sends (see _build_int8: a dynamic-batch int8
compile repacks weights on every call); a server under load adds its full search batch
(add_batch_size).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

from embedder.base import Model, WeightsInfo, l2_normalise
from embedder.errors import ModelLoadError
from embedder.preprocess import InputSpec, to_pixels

if TYPE_CHECKING:
    from torch import nn

T = TypeVar("T")
log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
INT8_MODES = ("auto", "off")
# How long a background compile waits for the images int8 calibrates on (embedder.int8)
# before it compiles without int8 (and upgrades once they arrive).
INT8_SAMPLE_WAIT_S = 60.0
# One compile or int8 build at a time in the process: torch.export and dynamo keep global
# tracing state (two int8 builds in parallel threads failed, measured), and the cores are
# busy embedding meanwhile anyway.
_BUILD_LOCK = threading.Lock()

# Random weights exist for tests only; a fixed seed makes their vectors reproducible.
RANDOM_SEED = 20240601


def seeded(factory: Callable[[], T]) -> T:
    """Build with a fixed seed, leaving the process-wide RNG state as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return factory()


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'. Raises ModelLoadError for an unusable one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for but CUDA is not available here. "
            "Set LOOKALIKE_DEVICE=auto or cpu.",
            setting="LOOKALIKE_DEVICE",
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelLoadError(
            f"Unknown device {device!r}: use LOOKALIKE_DEVICE=auto, cpu or cuda.",
            setting="LOOKALIKE_DEVICE",
        )
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it, bf16 is
    emulated and slower than fp32, so 'auto' must not pick it."""
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    try:  # older torch without the probes: the kernel's view of the flags
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def resolve_precision(precision: str, device: str) -> str:
    """'auto' -> 'bf16' where the device computes it natively, else 'fp32'."""
    import torch

    if precision not in PRECISIONS:
        raise ModelLoadError(
            f"Unknown precision {precision!r}: use LOOKALIKE_PRECISION=auto, fp32 or bf16.",
            setting="LOOKALIKE_PRECISION",
        )
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def load_state_dict_file(path: Path, *, model: str, setting: str) -> dict[str, Any]:
    """A state dict from a local .pth/.pt/.bin (torch) or .safetensors file."""
    import torch

    if not path.is_file():
        raise ModelLoadError(
            f"The {model} weights file {path} does not exist. Set {setting} to an existing "
            "file (or to one of the named weights).",
            model=model,
            setting=setting,
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"The {model} weights file {path} cannot be read as a state dict ({exc}). "
            f"Check the file, or change {setting}.",
            model=model,
            setting=setting,
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ModelLoadError(
            f"The {model} weights file {path} holds no state dict. Change {setting}.",
            model=model,
            setting=setting,
        )
    # Checkpoints saved from DataParallel prefix every key with 'module.'.
    return {k.removeprefix("module."): v for k, v in obj.items()}


class TorchModel(Model):
    input_spec: ClassVar[InputSpec]

    def __init__(self, weights: str, *, cache_dir: Path | None = None, device: str = "cpu") -> None:
        self.requested = weights  # the setting as given: a named source, a path or 'random'
        self.cache_dir = cache_dir
        self.device = device
        self.weights = WeightsInfo(source="not loaded")
        self._module: nn.Module | None = None
        self._runner: nn.Module | None = None  # _module behind PixelInput (normalisation)
        self.precision = "fp32"  # what embed() runs at; see tune()
        self._channels_last = False
        self.compile_mode = "off"
        self._compiled: Callable[[Any], Any] | None = None
        # int8 only: compiles for exactly these batch sizes (see _build_int8, add_batch_size).
        self.batch_size = 16
        self.threads = 0  # torch threads for every thread that runs or compiles it (tune)
        self._static: dict[int, Callable[[Any], Any]] = {}
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

    @abstractmethod
    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        """Create the network with its weights (on CPU). Raises ModelLoadError."""

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def load(self) -> None:
        if self._module is not None:
            return
        from embedder.nets import PixelInput

        module, info = self._build()
        module.eval()
        module.requires_grad_(False)
        self._module = module.to(self.device)
        spec = self.input_spec
        self._runner = PixelInput(self._module, spec.mean, spec.std).to(self.device).eval()
        self.weights = info

    def tune(
        self,
        precision: str = "auto",
        compile_mode: str = "off",
        int8: str = "off",
        batch_size: int = 16,
    ) -> None:
        """Apply the speed settings to the loaded module (see the module docstring).
        ``batch_size`` is the batch that bulk embedding uses (``ModelConfig.batch_size``).

        'fp32' leaves the module exactly as built: that is the reference the fidelity
        checks compare against. Call before the first embed(), from one thread.
        """
        import torch

        from embedder.nets import ClipImageTower, EffNetTrunk, PixelInput, PooledFeatures

        if self._module is None:
            raise RuntimeError(f"{self.name}: call load() before tune()")
        if compile_mode not in COMPILE_MODES:
            raise ModelLoadError(
                f"Unknown compile mode {compile_mode!r}: use LOOKALIKE_COMPILE=auto, on or off.",
                setting="LOOKALIKE_COMPILE",
            )
        self.precision = resolve_precision(precision, self.device)
        if precision == "auto" and isinstance(getattr(self._module, "trunk", None), EffNetTrunk):
            # bf16 fails the fidelity bound on EfficientNet-Lite0 (bundled ImageNet weights,
            # 64 photos: min cosine to fp32 0.9960 eager, 0.984 compiled, against >= 0.995),
            # and at 0.4 GFLOP an image it costs little in fp32.
            self.precision = "fp32"
        self.compile_mode = compile_mode
        self.batch_size = batch_size
        # torch's thread count is per OS thread, and set where the models load
        # (LOOKALIKE_INFERENCE_THREADS); inference and compiles run on other threads.
        self.threads = torch.get_num_threads()
        self._plan_int8(int8)
        if self.precision == "fp32":
            return
        if isinstance(self._module, ClipImageTower):
            self._module.fuse_attention()
        if isinstance(self._module, PooledFeatures) and isinstance(self._runner, PixelInput):
            # oneDNN's bf16 convolutions want NHWC; NCHW input costs a reorder per layer.
            self._module.to(memory_format=torch.channels_last)
            self._runner.channels_last = self._channels_last = True

    def runtime(self) -> dict[str, Any]:
        """How inference runs right now (for /api/v1/status): it changes once compiled."""
        return {
            "device": self.device,
            "precision": self.precision,
            "compiled": self._compiled is not None,
            "int8": self.int8,
            "int8_note": self.int8_note,
        }

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """uint8 (crop, crop, 3) pixels; ``embed`` normalises (see embedder.preprocess)."""
        return to_pixels(image, self.input_spec)

    def embed(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._runner is None:
            raise RuntimeError(f"{self.name}: call load() before embed()")
        self._pin_threads()
        if self.int8_mode == "auto" and not self._samples_ready.is_set():
            self._collect(batch)
        x = self._input(np.stack(batch))
        runner: Callable[[Any], Any] = self._runner
        static = self._static.get(len(batch))
        if static is not None:
            runner = static
        elif self._compiled is not None and len(batch) >= 2:
            runner = self._compiled
        with torch.inference_mode(), self._autocast():
            out = runner(x)
        return l2_normalise(out.float().cpu().numpy())

    def _input(self, pixels: np.ndarray) -> Any:
        """uint8 (N, H, W, 3) pixels on the device (moved as uint8: a quarter the bytes)."""
        import torch

        return torch.from_numpy(pixels).to(self.device, non_blocking=True)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        import torch

        if self.precision == "bf16":
            # Autocast, not bf16 weights: layer norms, softmax and reductions stay fp32.
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16):
                yield
        else:
            yield

    def _pin_threads(self) -> None:
        """Run this OS thread's torch ops on ``self.threads`` threads. The count is per thread,
        and a compiled module guards on it: compiled on a thread with another count, it
        recompiles at its first call, without freezing (seen in the test suite: a compile
        thread started with 2 threads, the thread calling the model had 1)."""
        import torch

        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # -- torch.compile ----------------------------------------------------------------------
    def start_compile(self, *, background: bool = True) -> None:
        """Compile the module, once per model (see the module docstring). In the background,
        embed() keeps using the eager module until the compiled one is ready."""
        if self.compile_mode == "off" or self._runner is None:
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

    def wait_compiled(self, timeout: float | None = None) -> bool:
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
        return self._compiled is not None

    def _compile(self, wait_for_samples: float) -> None:
        """int8 when it is asked for and the calibration images are there (or arrive within
        ``wait_for_samples`` seconds), else the plain compile; the plain one is upgraded to
        int8 later, when enough images have been embedded (``_collect``)."""
        self._pin_threads()
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

        assert self._runner is not None
        started = time.perf_counter()
        spec = self.input_spec
        # A batch of 4: sizes 0 and 1 would be specialised, not traced as a dynamic size.
        dummy = self._input(np.zeros((4, spec.crop, spec.crop, 3), np.uint8))
        try:
            with _BUILD_LOCK:
                compiled, _ = self._torch_compile(self._runner, [dummy])
        except Exception as exc:  # no C++ compiler, unsupported op...: eager still works
            log.warning("%s: torch.compile failed, staying eager (%s)", self.name, exc)
            return
        self._compiled = compiled
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
            with torch.inference_mode(), self._autocast():
                outputs = [compiled(x) for x in examples]
        return compiled, outputs

    # -- int8 -------------------------------------------------------------------------------
    def _plan_int8(self, int8: str) -> None:
        """Decide, at tune(), whether compiling this model may go int8 (embedder.int8)."""
        if int8 not in INT8_MODES:
            raise ModelLoadError(
                f"Unknown int8 mode {int8!r}: use LOOKALIKE_INT8=auto or off.",
                setting="LOOKALIKE_INT8",
            )
        self.int8_mode = "off"
        self.int8_note = None
        if int8 == "off" or self.compile_mode == "off":
            return
        from embedder import int8 as int8_lib

        reason = int8_lib.unavailable_reason(self.device, self.precision)
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

        assert self._runner is not None
        self._pin_threads()
        started = time.perf_counter()
        static: Callable[[Any], Any] | None = None
        try:
            samples = self._input(np.stack(self._samples))
            calibration = samples[: int8_lib.CALIBRATION_IMAGES]
            check = samples[int8_lib.CALIBRATION_IMAGES :]
            # Made here, outside inference mode, as embed() makes its input (see _torch_compile).
            checks = [c.clone() for c in check.split(16)]
            with _BUILD_LOCK:
                quantized = int8_lib.quantize(self._runner, calibration)
                compiled, outputs = self._torch_compile(quantized, checks)
                got = [torch.cat([out.float() for out in outputs]).cpu().numpy()]
                if self.batch_size >= 2:  # a batch of 1 is never compiled (see embed)
                    static, static_got = self._compile_static(quantized, check, self.batch_size)
                    got.append(static_got)
            with torch.inference_mode():  # the fp32 reference: the module as built
                want = torch.cat([self._runner(c).float() for c in checks]).cpu().numpy()
            cosine = min(int8_lib.min_cosine(g, want) for g in got)
        except Exception as exc:
            self.int8_note = f"int8 failed ({type(exc).__name__}: {str(exc)[:200]})"
            log.warning("%s: %s; staying %s", self.name, self.int8_note, self.precision)
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
            log.warning("%s: %s; staying %s", self.name, self.int8_note, self.precision)
            return False
        self._compiled = compiled
        self._static_asked.add(self.batch_size)
        if static is not None:
            self._static[self.batch_size] = static
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
        self._pin_threads()
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
        self._static[batch] = compiled
        log.info(
            "%s: int8 for batches of %d in %.1f s (min cosine to fp32 %.4f)",
            self.name,
            batch,
            time.perf_counter() - started,
            cosine,
        )
