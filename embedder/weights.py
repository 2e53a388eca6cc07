"""Building a network and its weights: the fixed seed for random weights, state dicts read
from a file, and the module made ready for inference behind ``PixelInput``.

No torch import at module level: the registry imports the model classes to read their names
and sizes, and that must stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from embedder.errors import ModelLoadError
from embedder.preprocess import InputSpec

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


def for_inference(module: nn.Module, spec: InputSpec, device: str) -> tuple[nn.Module, nn.Module]:
    """``module`` frozen for inference on ``device``, and the same module behind
    ``PixelInput``, which takes the uint8 pixels ``embedder.preprocess`` makes."""
    from embedder.nets import PixelInput

    module.eval()
    module.requires_grad_(False)
    module = module.to(device)
    runner = PixelInput(module, spec.mean, spec.std).to(device).eval()
    return module, runner
