"""Small stand-ins for the embedder tests (a unique module name: test dirs have no __init__):
tiny torch backbones with the real ones' shape, fast to build and compile; torch.compile's
stand-in; and a torch-free model with speed settings, for the pipeline's side of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from embedder_test_helpers import rgb
from PIL import Image
from skimage import data
from torchvision.models.resnet import BasicBlock

from embedder.base import Model, WeightsInfo, l2_normalise
from embedder.nets import PooledFeatures
from embedder.preprocess import InputSpec
from embedder.torch_model import TorchModel
from embedder.weights import seeded


class Tiny(TorchModel):
    """A small convnet with the backbones' shape (GeM-pooled trunk), fast to build."""

    role = "cnn"
    name = "tiny"
    dim = 8
    input_spec = InputSpec(resize=32, crop=32, mean=(0.5,) * 3, std=(0.5,) * 3)

    def _build(self) -> tuple[torch.nn.Module, WeightsInfo]:
        def make() -> torch.nn.Module:
            trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
            return PooledFeatures(trunk)

        return seeded(make), WeightsInfo(source="random")


class TinyResNet(TorchModel):
    """A GeM-pooled stem + two torchvision BasicBlocks: the ResNet pattern, fast to compile."""

    role = "cnn"
    name = "tiny-resnet"
    dim = 16
    input_spec = InputSpec(resize=72, crop=64, mean=(0.5,) * 3, std=(0.5,) * 3)

    def _build(self) -> tuple[torch.nn.Module, WeightsInfo]:
        def make() -> torch.nn.Module:
            stem = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(16),
                torch.nn.ReLU(),
            )
            trunk = torch.nn.Sequential(stem, BasicBlock(16, 16), BasicBlock(16, 16))
            return PooledFeatures(trunk)

        return seeded(make), WeightsInfo(source="random")


def loaded(model_class: type[TorchModel]) -> TorchModel:
    model = model_class("random")
    model.load()
    return model


def pixels(model: TorchModel, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` random inputs as ``model.preprocess`` makes them (uint8 crop x crop x 3)."""
    crop = model.input_spec.crop
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (crop, crop, 3), dtype=np.uint8) for _ in range(n)]


def crops(n: int, seed: int) -> list[Image.Image]:
    """Real photographic content: random square crops of scikit-image's colour photos."""
    sources = [
        rgb(getattr(data, name)())
        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")
    ]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = sources[i % len(sources)]
        side = int(rng.integers(min(image.size) // 2, min(image.size) + 1))
        x = int(rng.integers(0, image.width - side + 1))
        y = int(rng.integers(0, image.height - side + 1))
        out.append(image.crop((x, y, x + side, y + side)))
    return out


def embed_all(model: TorchModel, images: list[Image.Image], batch: int = 16) -> np.ndarray:
    inputs = [model.preprocess(im) for im in images]
    return embed_inputs(model, inputs, batch)


def embed_inputs(model: TorchModel, inputs: list[np.ndarray], batch: int = 16) -> np.ndarray:
    return np.concatenate(
        [model.embed(inputs[i : i + batch]) for i in range(0, len(inputs), batch)]
    )


@contextlib.contextmanager
def no_recompiles() -> Iterator[None]:
    """A compiled module that fails a guard recompiles, silently slower (no freezing): make
    that an error instead."""
    with torch._dynamo.config.patch(error_on_recompile=True):
        yield


class Spy:
    """Stands in for torch.compile: records each compile (its ``dynamic`` flag and the thread
    count it ran under) and each call of a compiled module ('dynamic' or 'static', and its
    batch size), or fails like a missing C++ compiler."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.compiles: list[dict[str, Any]] = []
        self.calls: list[tuple[str, int]] = []

    def __call__(self, module: Any, *, dynamic: bool = True, **kwargs: Any) -> Any:
        if self.fail:
            raise RuntimeError("no C++ compiler")
        self.compiles.append({"dynamic": dynamic, "threads": torch.get_num_threads()})
        kind = "dynamic" if dynamic else "static"

        def compiled(x: torch.Tensor) -> torch.Tensor:
            self.calls.append((kind, len(x)))
            return module(x)

        return compiled


@dataclass
class FakeNeural(Model):
    """A torch-free model with speed settings (embedder.base.Accelerated) that records what
    the pipeline asks of it; ``embed`` hands each batch to ``on_embed`` when one is set."""

    role = "cnn"
    name = "fake-neural"
    dim = 4
    int8: bool = False
    precision: str = "fp32"
    weights: WeightsInfo = field(default_factory=lambda: WeightsInfo(source="random"))
    tuned: list[tuple[str, str, str, int]] = field(default_factory=list)
    compiles: list[bool] = field(default_factory=list)  # background, per start_compile
    batch_sizes: list[int] = field(default_factory=list)  # add_batch_size
    waits: int = 0
    settled: int = 0  # settle_eager calls that took effect (not after a compile)
    embeds: int = 0  # embed calls
    settled_after: list[int] = field(default_factory=list)  # embed calls before each settle
    on_embed: Any = None
    compile_estimate: float = 60.0  # what expected_compile_s answers (embedder.compile_rule)

    def load(self) -> None:
        """Nothing to load."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((2, 2)), dtype=np.float32).reshape(-1)[: self.dim] + 1

    def embed(self, batch: list[Any]) -> np.ndarray:
        self.embeds += 1
        if self.on_embed is not None:
            self.on_embed(batch)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.stack(batch))

    def tune(self, precision: str, compile_mode: str, int8: str, batch_size: int) -> None:
        self.tuned.append((precision, compile_mode, int8, batch_size))

    def start_compile(self, *, background: bool = True) -> None:
        self.compiles.append(background)

    def expected_compile_s(self) -> float:
        return 0.0 if self.compiles else self.compile_estimate

    def wait_compiled(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return False

    def add_batch_size(self, batch: int, *, background: bool = True) -> None:
        self.batch_sizes.append(batch)

    def settle_eager(self) -> bool:
        if self.compiles:
            return False
        self.settled += 1
        self.settled_after.append(self.embeds)
        return True

    def runtime(self) -> dict[str, Any]:
        return {"precision": self.precision, "int8": self.int8}
