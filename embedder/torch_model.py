"""What the three neural backbones share: device handling, seeding, batched inference.

No torch import at module level: the registry imports the model classes to read their names
and sizes, and that must stay cheap. Later tuning (bf16, channels_last, torch.compile) belongs
in ``TorchModel.load``/``embed``, the one place every backbone goes through.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

from embedder.base import Model, WeightsInfo, l2_normalise
from embedder.errors import ModelLoadError
from embedder.preprocess import InputSpec, to_input

if TYPE_CHECKING:
    from torch import nn

T = TypeVar("T")

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

    @abstractmethod
    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        """Create the network with its weights (on CPU). Raises ModelLoadError."""

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def load(self) -> None:
        if self._module is not None:
            return
        module, info = self._build()
        module.eval()
        module.requires_grad_(False)
        self._module = module.to(self.device)
        self.weights = info

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_input(image, self.input_spec)

    def embed(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._module is None:
            raise RuntimeError(f"{self.name}: call load() before embed()")
        x = torch.from_numpy(np.stack(batch)).to(self.device)
        with torch.inference_mode():
            out = self._module(x)
        return l2_normalise(out.float().cpu().numpy())
