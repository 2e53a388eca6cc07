"""torch modules used by the backbones. Imported only from ``load()``: torch is heavy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class PixelInput(nn.Module):
    """uint8 NHWC pixels -> normalised float32 NCHW -> ``net``: the same arithmetic as
    ``embedder.preprocess.normalise``, bit for bit. In the module so that torch.compile fuses
    it into one pass (eager: four passes over the batch, ~14 ms a batch of 16 here)."""

    def __init__(
        self,
        net: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.net = net
        self.channels_last = False
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # NHWC seen as NCHW is the channels_last layout: no copy for a channels_last net.
        x = pixels.permute(0, 3, 1, 2).float() * (1.0 / 255.0)
        x = (x - self.mean) / self.std
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        out: torch.Tensor = self.net(x.contiguous(memory_format=fmt))
        return out


class GeM(nn.Module):
    """Generalised-mean pooling over H and W; p=1 is average pooling, p->inf is max pooling.

    p=3 (fixed, not learned) is the usual choice for retrieval with ImageNet backbones: it
    favours the strongest local responses, so a small object that matches counts for more
    than it would under average pooling.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = p
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always in fp32, also under bf16 autocast: x**3 spans a far wider range than x, and
        # the map is small (N x C x 7 x 7), so this costs nothing measurable.
        x = x.float()
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


def fold_batch_norms(resnet: nn.Module) -> int:
    """Fold each BatchNorm of a torchvision ResNet into the convolution before it (a conv with
    a bias, the norm replaced by Identity); returns how many. The same function in inference
    (the norm's statistics are constants), one pass over the activations less per layer:
    ResNet-50 eager bf16 on 2 cores went from 32 to 38 img/s, cosine 0.999994 to the unfolded
    fp32 net. The structure stays (int8's ``split_shared_relus`` patches the blocks by name);
    a compiled module folds the norms itself, so this changes what eager runs and no more.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torchvision.models.resnet import BasicBlock, Bottleneck

    resnet.eval()
    folded = 0

    def fold(owner: nn.Module, conv: str, bn: str) -> None:
        nonlocal folded
        c, b = getattr(owner, conv), getattr(owner, bn)
        if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            setattr(owner, conv, fuse_conv_bn_eval(c, b))
            setattr(owner, bn, nn.Identity())
            folded += 1

    fold(resnet, "conv1", "bn1")  # the stem
    for block in resnet.modules():
        if isinstance(block, (Bottleneck, BasicBlock)):
            for i in (1, 2, 3):
                if hasattr(block, f"conv{i}"):
                    fold(block, f"conv{i}", f"bn{i}")
            if isinstance(block.downsample, nn.Sequential) and len(block.downsample) == 2:
                fold(block.downsample, "0", "1")
    return folded


class PooledFeatures(nn.Module):
    """A convolutional trunk (N, C, H, W) followed by GeM -> (N, C)."""

    def __init__(self, trunk: nn.Module, p: float = 3.0) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool = GeM(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x))


class EffNetTrunk(nn.Module):
    """EfficientNet-Lite up to its last 1x1 conv (1280 channels), before pooling and fc."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


class ClipImageTower(nn.Module):
    """Calls ``encode_image`` on an open_clip model (whose text tower may have been freed)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(x)  # type: ignore[operator]

    def fuse_attention(self) -> int:
        """Route the image tower's self-attention through ``FusedSelfAttention``; returns how
        many layers changed. The text tower (causal masks) is left alone."""
        visual = self.clip.visual
        assert isinstance(visual, nn.Module)
        return fuse_attention(visual)


class FusedSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` (batch_first) for unmasked self-attention, done as one 2-D
    matmul for q, k and v and ``scaled_dot_product_attention``. Same weights, same result.

    Why: under bf16 autocast, MultiheadAttention projects its (L, N, E)-transposed input with
    a batched matmul that first materialises a copy of the weight per batch row; measured on
    2 AVX-512 cores at batch 16 that copy made CLIP's bf16 forward *slower* than fp32 (8 vs
    16 img/s). Projecting the contiguous (N, L, E) input avoids it: 66 img/s in bf16.
    Anything this path does not cover (a mask, cross-attention, attention weights) goes to
    the original module.
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha  # keeps the parameters and the state dict keys, plus the fallback
        # An nn.Linear over mha's own in_proj parameters, set on the int8 copy only
        # (embedder.int8.expose_attention_linears): the quantizer quantizes nn.Linear calls.
        self.in_proj: nn.Module | None = None

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mha = self.mha
        if (
            need_weights
            or attn_mask is not None
            or kwargs.get("key_padding_mask") is not None
            or not (query is key is value)
            or query.dim() != 3
        ):
            fallback: tuple[torch.Tensor, torch.Tensor | None] = mha(
                query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs
            )
            return fallback
        n, length, embed = query.shape
        heads = mha.num_heads
        if self.in_proj is not None:
            qkv = self.in_proj(query)
        else:
            qkv = F.linear(query, mha.in_proj_weight, mha.in_proj_bias)
        qkv = qkv.view(n, length, 3, heads, embed // heads).permute(2, 0, 3, 1, 4)
        heads_out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=0.0)
        return mha.out_proj(heads_out.transpose(1, 2).reshape(n, length, embed)), None


def fuse_attention(root: nn.Module) -> int:
    """Wrap every batch_first, same-dimension ``nn.MultiheadAttention`` under ``root``."""
    targets = [
        (parent, name, child)
        for parent in root.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.MultiheadAttention)
        and child.batch_first
        and child._qkv_same_embed_dim
        and child.in_proj_weight is not None
    ]
    for parent, name, child in targets:
        setattr(parent, name, FusedSelfAttention(child))
    return len(targets)
