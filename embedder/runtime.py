"""Where and how a model's module runs: the device, torch's thread count, the precision
(bf16 autocast or fp32) and the memory layout and attention kernels that suit it.

No torch import at module level: the registry imports the model classes to read their names
and sizes, and that must stay cheap.

Speed, as measured on 2 AVX-512 (+bf16) cores, batch 16, random weights (same compute);
img/s for CLIP ViT-B/32 / ResNet-50 (GeM), other tenants on the cores, so +-15 %, eager (the
compiled rows of this table are in embedder.compiled):

    eager fp32 (the baseline)                       16-21 / 21
    eager bf16 autocast                              8 / 50    (CLIP: see FusedSelfAttention)
    + fused attention, channels_last (ResNet)       66 / 65
    ONNX Runtime 1.32 fp32 (no bf16 CPU kernels)    21 / 12.5

So: bf16 autocast where the hardware has native bf16 (AVX512-BF16 or AMX on CPU, any
bf16-capable GPU), fp32 elsewhere; fused attention for CLIP; channels_last for the CNNs;
ONNX Runtime is not used. EfficientNet-Lite0 stays fp32 under 'auto' (``auto_bf16`` in
embedder.cnn), but channels_last still pays there: 13 pictures of 224 px, eager fp32, 2
cores: 420 ms NCHW against 225 ms channels_last (the layout changes no value beyond
fp32 rounding). Only an explicit 'fp32' leaves the module exactly as built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.config import PRECISIONS, check_choice
from embedder.errors import ModelLoadError

if TYPE_CHECKING:
    from torch import nn


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


def set_torch_threads(threads: int) -> None:
    """torch's intra-op threads for the calling OS thread: the one the models load on, whose
    count tune() reads back for every thread that runs them (LOOKALIKE_INFERENCE_THREADS)."""
    import torch

    torch.set_num_threads(threads)


def resolve_precision(precision: str, device: str) -> str:
    """'auto' -> 'bf16' where the device computes it natively, else 'fp32'."""
    import torch

    check_choice(precision, PRECISIONS, what="precision", setting="LOOKALIKE_PRECISION")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def tune_for_bf16(module: nn.Module, runner: nn.Module) -> bool:
    """Fused attention for CLIP, channels_last for the CNNs (``runner`` is ``module`` behind
    PixelInput); True when the layout changed to channels_last."""
    from embedder.nets import ClipImageTower

    if isinstance(module, ClipImageTower):
        module.fuse_attention()
    return channels_last_for_cnn(module, runner)


def channels_last_for_cnn(module: nn.Module, runner: nn.Module) -> bool:
    """channels_last for a CNN (its convolutions run faster on NHWC in bf16 and fp32 alike);
    True when the layout changed."""
    import torch

    from embedder.nets import PixelInput, PooledFeatures

    if isinstance(module, PooledFeatures) and isinstance(runner, PixelInput):
        # oneDNN's bf16 convolutions want NHWC; NCHW input costs a reorder per layer.
        module.to(memory_format=torch.channels_last)
        runner.channels_last = True
        return True
    return False


@dataclass
class Execution:
    """How one model's module runs; shared by the model and its compiled runner, which both
    run it, on whatever thread calls them."""

    device: str
    precision: str = "fp32"  # what embed() runs at; see TorchModel.tune
    threads: int = 0  # torch threads for every thread that runs or compiles it (tune)
    channels_last: bool = False

    def pin_threads(self) -> None:
        """Run this OS thread's torch ops on ``self.threads`` threads. The count is per thread,
        and a compiled module guards on it: compiled on a thread with another count, it
        recompiles at its first call, without freezing (seen in the test suite: a compile
        thread started with 2 threads, the thread calling the model had 1)."""
        import torch

        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    @contextlib.contextmanager
    def autocast(self, precision: str | None = None) -> Iterator[None]:
        """Run at ``precision`` ('fp32' or 'bf16'; None: ``self.precision``)."""
        import torch

        if (precision or self.precision) == "bf16":
            # Autocast, not bf16 weights: layer norms, softmax and reductions stay fp32.
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16):
                yield
        else:
            yield

    def to_device(self, pixels: np.ndarray) -> Any:
        """uint8 (N, H, W, 3) pixels on the device (moved as uint8: a quarter the bytes)."""
        import torch

        return torch.from_numpy(pixels).to(self.device, non_blocking=True)
