"""torch modules used by the backbones. Imported only from ``load()``: torch is heavy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


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
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


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
    """Calls ``encode_image`` on a whole open_clip model (its text tower is kept for text)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(x)  # type: ignore[operator]
