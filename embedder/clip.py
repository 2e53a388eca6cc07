"""CLIP ViT-B/32 (open_clip): image vectors now, text vectors for text search.

Weights (LOOKALIKE_CLIP_WEIGHTS):
  'openai'  OpenAI's weights via open_clip's pretrained tag. The cache is looked up first
            without touching the network (the Hugging Face hub cache, then open_clip's URL
            cache); only on a miss does open_clip download, into the same cache.
  a path    a local checkpoint file for the ViT-B-32 architecture (state dict, safetensors,
            or OpenAI's TorchScript ViT-B-32.pt).
  'random'  explicit only, for tests: fixed-seed initialisation, vectors mean nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from embedder.base import WeightsInfo, l2_normalise
from embedder.errors import ModelLoadError, plain_cause
from embedder.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, InputSpec
from embedder.torch_model import TorchModel
from embedder.weights import seeded

if TYPE_CHECKING:
    from torch import nn

ARCH = "ViT-B-32"
PRETRAINED_TAG = "openai"
SETTING = "LOOKALIKE_CLIP_WEIGHTS"
# Files open_clip may fetch for a hub entry without a file name, preferred first.
_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# What only encode_text uses: 63M of ViT-B-32's 151M parameters, about 250 MB in fp32.
TEXT_PARTS = (
    "transformer",
    "token_embedding",
    "positional_embedding",
    "ln_final",
    "text_projection",
)

log = logging.getLogger(__name__)


def clip_cache_dir(cache_dir: Path | None) -> Path | None:
    """Under LOOKALIKE_MODEL_CACHE_DIR, mirror HF_HOME's layout so a copied cache just works."""
    return cache_dir / "huggingface" / "hub" if cache_dir is not None else None


def find_cached_openai(cache_dir: Path | None) -> str | None:
    """The cached OpenAI ViT-B-32 checkpoint, found without any network access, or None."""
    from open_clip import pretrained as oc_pretrained

    cfg = oc_pretrained.get_pretrained_cfg(ARCH, PRETRAINED_TAG)
    hub = cfg.get("hf_hub", "")
    hit = _hub_cache_hit(hub, cache_dir) if hub else None
    if hit is not None:
        return hit
    url = cfg.get("url", "")
    if url:
        root = cache_dir if cache_dir is not None else Path("~/.cache/clip").expanduser()
        target = root / os.path.basename(url)
        # open_clip writes straight to the target, so an interrupted download leaves a partial
        # file; the URL carries the SHA-256, as open_clip itself checks.
        if target.is_file() and _sha256(target).startswith(url.split("/")[-2]):
            return str(target)
    return None


def _hub_cache_hit(hub: str, cache_dir: Path | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # without the hub client open_clip downloads by URL instead
        return None
    repo_id, filename = os.path.split(hub)
    for candidate in (filename,) if filename else _HUB_FILES:
        hit = try_to_load_from_cache(repo_id, candidate, cache_dir=cache_dir)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _check_hub_reachable() -> None:
    """Fail in milliseconds when the hub cannot be reached at all: otherwise the hub client
    retries with backoff for ~45 s before giving up, on every start of an offline machine.
    Skipped behind a proxy, where a direct connection says nothing about reachability."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=5).close()
    except OSError as exc:
        raise OSError(f"cannot reach {host} to download the weights ({exc})") from exc


def download_openai(cache_dir: Path | None) -> str:
    """Fetch the checkpoint through open_clip (the network seam tests patch)."""
    from open_clip import pretrained as oc_pretrained

    _check_hub_reachable()
    cfg = oc_pretrained.get_pretrained_cfg(ARCH, PRETRAINED_TAG)
    path = oc_pretrained.download_pretrained(
        cfg, cache_dir=str(cache_dir) if cache_dir is not None else None
    )
    if not path:
        raise RuntimeError(f"open_clip has no download source for {ARCH}/{PRETRAINED_TAG}")
    return str(path)


class ClipViTB32(TorchModel):
    role: ClassVar[str] = "clip"
    name = "clip-vit-b-32"
    dim = 512
    input_spec = InputSpec(
        resize=224,
        crop=224,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        resample=Image.Resampling.BICUBIC,
    )

    def __init__(
        self,
        weights: str = PRETRAINED_TAG,
        *,
        cache_dir: Path | None = None,
        device: str = "cpu",
        compile_dir: Path | None = None,
        text: bool = True,
    ) -> None:
        """``text=False``: free the text tower once loaded (a run that only embeds images,
        like ``lookalike index``, saves about 250 MB); a text query then loads it again."""
        super().__init__(weights, cache_dir=cache_dir, device=device, compile_dir=compile_dir)
        self.keep_text = text
        self._clip: Any = None
        self._text: Any = None  # the model whose text tower embed_text uses
        self._text_lock = threading.Lock()
        self._tokenizer: Any = None

    def _build(self) -> tuple[nn.Module, WeightsInfo]:
        import open_clip

        from embedder.nets import ClipImageTower

        clip, info = self._create()
        self._clip = clip
        self._tokenizer = open_clip.get_tokenizer(ARCH)  # bundled BPE vocabulary: no network
        if self.keep_text:
            self._text = clip
        else:
            _drop(clip, TEXT_PARTS)  # before any tuning or compile sees the module
        return ClipImageTower(clip), info

    def _create(self) -> tuple[Any, WeightsInfo]:
        """The whole open_clip model with the requested weights."""
        import open_clip

        requested = self.requested
        if requested == "random":
            # quick_gelu matches OpenAI's architecture, so 'random' differs only in weights.
            clip = seeded(
                lambda: open_clip.create_model(ARCH, pretrained=None, force_quick_gelu=True)
            )
            info = WeightsInfo(source="random")
        elif requested == PRETRAINED_TAG:
            clip = self._from_file(self._openai_checkpoint())
            info = WeightsInfo(source=PRETRAINED_TAG)
        else:
            path = Path(requested).expanduser()
            if not path.is_file():
                raise ModelLoadError(
                    f"The CLIP checkpoint {path} does not exist. Set {SETTING} to an existing "
                    "ViT-B-32 checkpoint file, to 'openai', or to 'off'.",
                    model=self.name,
                    setting=SETTING,
                )
            clip = self._from_file(str(path))
            info = WeightsInfo(source=f"file:{path}")
        return clip, info

    def _text_model(self) -> Any:
        """The model whose text tower embeds text; loaded again (the same weights, from the
        same source) the first time when ``text=False`` freed it."""
        with self._text_lock:
            if self._text is None:
                log.info("Loading CLIP's text tower for a text query (%s).", self.requested)
                clip, _ = self._create()
                _drop(clip, ("visual",))
                self._text = clip.eval().to(self.device)
            return self._text

    def _openai_checkpoint(self) -> str:
        cache = clip_cache_dir(self.cache_dir)
        cached = find_cached_openai(cache)
        if cached is not None:
            return cached
        try:
            return download_openai(cache)
        except Exception as exc:
            where = cache or "the default caches (~/.cache/huggingface, ~/.cache/clip)"
            raise ModelLoadError(
                f"The CLIP weights ('{PRETRAINED_TAG}') are not on this machine ({where}) and "
                f"could not be downloaded: {plain_cause(exc)}. To use CLIP, copy a populated "
                f"cache into LOOKALIKE_MODEL_CACHE_DIR, or set {SETTING} to a local checkpoint "
                "file. (Offline, HF_HUB_OFFLINE=1 skips the download attempt and its retries.)",
                model=self.name,
                setting=SETTING,
            ) from exc

    def _from_file(self, path: str) -> Any:
        try:
            return _assign_checkpoint(
                path,
                # OpenAI's own file is a TorchScript archive, which weights_only cannot read;
                # TorchScript holds no arbitrary pickled Python, so reading it is safe.
                weights_only=not _is_torchscript(path),
            )
        except Exception as exc:
            raise ModelLoadError(
                f"The CLIP checkpoint {path} could not be loaded into {ARCH} "
                f"({_first_line(exc)}). Set {SETTING} to a ViT-B-32 checkpoint, 'openai' or "
                "'off'.",
                model=self.name,
                setting=SETTING,
            ) from exc

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, 512) float32, L2-normalised, in the same space as the image vectors."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._clip is None or self._tokenizer is None:
            raise RuntimeError(f"{self.name}: call load() before embed_text()")
        model = self._text_model()
        tokens = self._tokenizer(texts).to(self.device)
        with torch.inference_mode():
            out = model.encode_text(tokens)
        return l2_normalise(out.float().cpu().numpy())


def _assign_checkpoint(path: str, *, weights_only: bool) -> Any:
    """ViT-B-32 with the weights of the checkpoint at ``path``, holding one copy of them at
    most: the model is laid out on the meta device (no memory), and the checkpoint's own
    tensors become its parameters (``assign``). Loading into a built model held the random
    initialisation and the checkpoint at once: ``lookalike index`` peaked at 1.96 GB with a
    CLIP file and a ResNet-50 file, against 1.40 GB with random weights (no file read)."""
    from itertools import chain

    import open_clip
    import torch

    # The architecture from open_clip's own config (create_model would log that the model is
    # "initialized randomly", which these weights are not).
    with torch.device("meta"):
        clip = open_clip.CLIP(**open_clip.get_model_config(ARCH), quick_gelu=True)
    load = clip.load_state_dict

    def assign(state: Any, strict: bool = True) -> Any:
        return load(state, strict=strict, assign=True)

    clip.load_state_dict = assign  # open_clip's loader keeps its key conversions
    try:
        open_clip.load_checkpoint(clip, path, strict=True, weights_only=weights_only)
    finally:
        del clip.load_state_dict
    clip.float()  # OpenAI's own file holds fp16 weights; the reference runs in fp32
    # The one buffer no checkpoint holds: the text tower's causal mask (open_clip's own).
    n = clip.context_length
    mask = torch.empty(n, n).fill_(float("-inf")).triu_(1)
    clip.register_buffer("attn_mask", mask, persistent=False)
    empty = [name for name, t in chain(clip.named_parameters(), clip.named_buffers()) if t.is_meta]
    if empty:
        raise RuntimeError(f"the checkpoint left {len(empty)} tensors unset, e.g. {empty[:3]}")
    return clip.eval()


def _drop(clip: Any, parts: tuple[str, ...]) -> None:
    """Free these submodules and parameters of an open_clip model (set to None)."""
    for name in parts:
        setattr(clip, name, None)


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
