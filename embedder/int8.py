"""int8 inference for the compiled CPU models: post-training static quantization with
torchao's PT2E flow (``X86InductorQuantizer``: int8 weights per channel, int8 activations
per tensor, oneDNN's VNNI kernels after torch.compile with freezing). What is not quantized
(layer norms, softmax, GeM pooling) keeps running under bf16 autocast.

Measured on 2 AVX-512 (VNNI + BF16) cores, batch 16, random weights, real photos; img/s,
compiled, each model alone:

                        bf16     int8
    CLIP ViT-B/32       71-85    126-130 (105-111 before its attention projections were
                                          quantized too: expose_attention_linears)
    ResNet-50 (GeM)     85-103   118-126

Calibration needs real inputs, so a model collects the first ``SAMPLES`` images it embeds:
the first half calibrates the activation ranges, the second half checks the result. The
int8 module replaces the bf16 compiled one only if every check image's vector keeps a
cosine of at least ``MIN_COSINE`` to the fp32 vector (random weights, 160 held-out photos:
min 0.9998 for CLIP, 0.9994 for ResNet-50). Trained weights with activation outliers that
int8 cannot hold fail the check and stay bf16, with a warning that says so.

torch and torchao are imported inside the functions, torchao only when a model builds int8:
the model classes import this module at load, and loading must not pay for torchao (1-2 s).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

CALIBRATION_IMAGES = 32
CHECK_IMAGES = 32
SAMPLES = CALIBRATION_IMAGES + CHECK_IMAGES
# Above the 0.995 fidelity bound every vector must meet: the check images are a sample.
MIN_COSINE = 0.998
_CALIBRATION_BATCH = 8
_MAX_BATCH = 1024  # the exported graph's batch dimension is dynamic up to this


def unavailable_reason(device: str, precision: str) -> str | None:
    """None when int8 can run here, else why not (for the log and /api/v1/status)."""
    import torch

    if not device.startswith("cpu"):
        return "int8 is for CPU inference"
    if precision != "bf16":
        # The unquantized layers run in bf16; without native bf16, int8 was not measured.
        return "int8 runs where bf16 does (a CPU with native bf16)"
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    vnni = False
    if probe is not None:
        with contextlib.suppress(Exception):
            vnni = bool(probe())
    if not vnni:
        return "the CPU has no VNNI int8 instructions"
    # Only looked up here: importing torchao takes 1-2 s, which model loading should not pay.
    # A torchao that is there but does not fit this torch fails the build, with a warning.
    if importlib.util.find_spec("torchao") is None:
        return "torchao is not installed"
    return None


def expose_attention_linears(root: nn.Module) -> int:
    """Make every attention projection an ``nn.Linear`` call; returns how many changed.

    The quantizer finds linear layers by the module that called them, and only a plain
    ``nn.Linear`` counts: ``FusedSelfAttention``'s q/k/v projection (a functional call on
    the MultiheadAttention's parameters) and its output projection (torch's
    ``NonDynamicallyQuantizableLinear``) stayed bf16, a third of CLIP's linear work and
    half its linear time. The new modules share the parameters: same weights, same result.
    """
    from torch import nn
    from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

    from embedder.nets import FusedSelfAttention

    changed = 0
    for module in root.modules():
        if isinstance(module, FusedSelfAttention) and module.in_proj is None:
            mha = module.mha
            in_proj = nn.Linear(
                mha.embed_dim, 3 * mha.embed_dim, bias=mha.in_proj_bias is not None, device="meta"
            )
            in_proj.weight = mha.in_proj_weight
            in_proj.bias = mha.in_proj_bias
            module.in_proj = in_proj
            changed += 1
        elif type(module) is NonDynamicallyQuantizableLinear:
            # It only marks the module for an older quantization API; its forward is
            # nn.Linear's.
            module.__class__ = nn.Linear  # type: ignore[assignment]
            changed += 1
    return changed


def split_shared_relus(root: nn.Module) -> int:
    """Give each torchvision ResNet block one ReLU module per call; returns how many changed.

    Its blocks call one ``self.relu`` two or three times, and the quantizer matches patterns
    (conv + add + relu) per module call site: a module used at three places reads as one
    partition with three outputs, which it refuses. ReLU has no state, so the weights and
    the result are unchanged.
    """
    split_bottleneck, split_basic = _split_blocks()
    changed = 0
    for module in root.modules():
        if type(module).__name__ in ("Bottleneck", "BasicBlock") and not hasattr(module, "relu_in"):
            bottleneck = hasattr(module, "conv3")
            module.__class__ = split_bottleneck if bottleneck else split_basic
            module.relu_in = copy.deepcopy(module.relu)
            if bottleneck:
                module.relu_mid = copy.deepcopy(module.relu)
            changed += 1
    return changed


@functools.cache
def _split_blocks() -> tuple[type[nn.Module], type[nn.Module]]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    class SplitBottleneck(Bottleneck):
        relu_in: nn.Module
        relu_mid: nn.Module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu_in(self.bn1(self.conv1(x)))
            out = self.relu_mid(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            result: torch.Tensor = self.relu(out + identity)
            return result

    class SplitBasicBlock(BasicBlock):
        relu_in: nn.Module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu_in(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            result: torch.Tensor = self.relu(out + identity)
            return result

    return SplitBottleneck, SplitBasicBlock


def quantize(runner: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """An int8 copy of ``runner`` (uint8 NHWC pixels in, as PixelInput takes them),
    calibrated on ``calibration``; ``runner`` itself is left untouched. Compile the result
    with freezing to get the int8 kernels (uncompiled it is slow: it simulates them)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    model = copy.deepcopy(runner).eval()
    split_shared_relus(model)
    expose_attention_linears(model)
    example = calibration[:_CALIBRATION_BATCH].clone()
    batch = torch.export.Dim("batch", min=2, max=_MAX_BATCH)
    exported = torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():  # observers record activation ranges, in fp32
        for chunk in calibration.split(_CALIBRATION_BATCH):
            if len(chunk) >= 2:
                prepared(chunk.clone())
    converted: nn.Module = convert_pt2e(prepared)
    return converted


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine between two (n, dim) arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float(np.min(np.sum(a * b, axis=1)))
