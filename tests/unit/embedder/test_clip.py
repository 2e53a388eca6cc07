"""CLIP ViT-B/32 with explicit random weights, and how its 'openai' weights resolve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embedder_test_helpers import Offline, checkpoint_file
from PIL import Image

from embedder.clip import ClipViTB32, clip_cache_dir, find_cached_openai
from embedder.errors import ModelLoadError

HUB_REPO = "models--timm--vit_base_patch32_clip_224.openai"


@pytest.mark.slow
def test_random_weights_shapes_and_norms(
    random_clip: ClipViTB32, photos: dict[str, Image.Image]
) -> None:
    assert (random_clip.role, random_clip.name, random_clip.dim) == ("clip", "clip-vit-b-32", 512)
    assert random_clip.weights.source == "random" and not random_clip.weights.fallback
    batch = [random_clip.preprocess(img) for img in photos.values()]
    assert batch[0].shape == (224, 224, 3) and batch[0].dtype == np.uint8  # normalised in embed
    v = random_clip.embed(batch)
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert random_clip.embed([]).shape == (0, 512)


@pytest.mark.slow
def test_random_weights_are_reproducible(
    random_clip: ClipViTB32, photos: dict[str, Image.Image]
) -> None:
    again = ClipViTB32("random")
    again.load()
    x = [random_clip.preprocess(photos["coffee"])]
    np.testing.assert_allclose(random_clip.embed(x), again.embed(x), atol=1e-5)
    text = ["a cat on a chair"]
    np.testing.assert_allclose(random_clip.embed_text(text), again.embed_text(text), atol=1e-5)


@pytest.mark.slow
def test_an_index_only_model_frees_the_text_tower_and_loads_it_again_for_text(
    random_clip: ClipViTB32, photos: dict[str, Image.Image], caplog: pytest.LogCaptureFixture
) -> None:
    lean = ClipViTB32("random", text=False)
    lean.load()
    module = lean._module
    assert module is not None and random_clip._module is not None

    def count(m: object) -> int:
        return sum(p.numel() for p in m.parameters())  # type: ignore[attr-defined]

    # The text tower (63M of 151M parameters) is gone; the image tower is all there.
    assert count(random_clip._module) - count(module) > 60_000_000
    x = [lean.preprocess(photos["coffee"])]
    np.testing.assert_allclose(lean.embed(x), random_clip.embed(x), atol=1e-5)
    text = ["a gold ring with a stone"]
    with caplog.at_level("INFO", logger="embedder.clip"):
        v = lean.embed_text(text)
    assert "Loading CLIP's text tower" in caplog.text
    np.testing.assert_allclose(v, random_clip.embed_text(text), atol=1e-5)
    # The reloaded text model carries no second image tower.
    assert lean._text is not None and lean._text.visual is None


@pytest.mark.slow
def test_text_vectors_use_the_bundled_tokenizer(random_clip: ClipViTB32) -> None:
    t = random_clip.embed_text(["a gold ring with a stone", "a red dress", "x" * 1000])
    assert t.shape == (3, 512) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)
    assert random_clip.embed_text([]).shape == (0, 512)


def test_a_missing_checkpoint_names_the_path_and_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelLoadError) as err:
        ClipViTB32(str(missing)).load()
    assert str(missing) in str(err.value)
    assert "LOOKALIKE_CLIP_WEIGHTS" in str(err.value)


@pytest.mark.slow
def test_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="LOOKALIKE_CLIP_WEIGHTS"):
        ClipViTB32(str(junk)).load()


@pytest.mark.slow
@pytest.mark.parametrize("half", [False, True])
def test_a_checkpoint_file_gives_the_weights_it_holds(
    tmp_path: Path,
    random_clip: ClipViTB32,
    photos: dict[str, Image.Image],
    half: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Loaded into a model laid out on the meta device (one copy of the weights at a time):
    every tensor is set, in fp32 (OpenAI's own file is fp16), and the vectors are those of
    the model the file was saved from."""
    import torch

    assert random_clip._clip is not None
    path = checkpoint_file(random_clip._clip.state_dict(), tmp_path / "vit-b-32.pt", half=half)
    model = ClipViTB32(str(path))
    with caplog.at_level("WARNING"):
        model.load()
    assert "randomly" not in caplog.text  # real weights are never reported as random
    assert model.weights.source == f"file:{path}"
    tensors = [*model._clip.parameters(), *model._clip.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}
    assert torch.equal(model._clip.attn_mask, random_clip._clip.attn_mask)
    x = [model.preprocess(im) for im in photos.values()]
    text = ["a gold ring with a stone", "a red dress"]
    bound = 2e-3 if half else 1e-5
    np.testing.assert_allclose(model.embed(x), random_clip.embed(x), atol=bound)
    np.testing.assert_allclose(model.embed_text(text), random_clip.embed_text(text), atol=bound)


@pytest.mark.slow
def test_a_checkpoint_for_another_architecture_is_refused(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(8, 3, 16, 16)}, path)
    with pytest.raises(ModelLoadError, match="could not be loaded into ViT-B-32"):
        ClipViTB32(str(path)).load()


def test_openai_offline_with_an_empty_cache(tmp_path: Path, offline: Offline) -> None:
    model = ClipViTB32("openai", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError) as err:
        model.load()
    message = str(err.value)
    assert "could not be downloaded" in message
    for setting in ("LOOKALIKE_CLIP_WEIGHTS", "LOOKALIKE_MODEL_CACHE_DIR"):
        assert setting in message
    assert offline.attempts == ["open_clip:timm/vit_base_patch32_clip_224.openai/"]
    assert not model.loaded


def test_the_cache_is_found_without_the_network(tmp_path: Path) -> None:
    cache = clip_cache_dir(tmp_path)
    assert cache == tmp_path / "huggingface" / "hub"
    assert find_cached_openai(cache) is None
    # The layout huggingface_hub writes: refs/main names the snapshot holding the file.
    repo = cache / HUB_REPO
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    weights = snapshot / "open_clip_model.safetensors"
    weights.write_bytes(b"cached")
    assert find_cached_openai(cache) == str(weights)


def test_openai_url_cache_needs_the_right_checksum(tmp_path: Path) -> None:
    (tmp_path / "ViT-B-32.pt").write_bytes(b"a partial download")
    assert find_cached_openai(tmp_path) is None


def test_unreachable_hub_fails_fast_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import embedder.clip

    def refuse(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(OSError, match=r"cannot reach huggingface\.co"):
        embedder.clip._check_hub_reachable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    embedder.clip._check_hub_reachable()  # behind a proxy the probe says nothing: skipped
