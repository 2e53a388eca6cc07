"""ResNet-50 and EfficientNet-Lite0 with GeM pooling: weights, shapes, and what they see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from embedder_test_helpers import Offline, checkpoint_file, cosine, recompressed
from PIL import Image

from embedder.cnn import EffNetLite0, ResNet50Gem, bundled_effnet_lite0_path
from embedder.errors import ModelLoadError
from embedder.nets import GeM, fold_batch_norms
from embedder.runtime import cpu_has_bf16

RESNET_FILE = "resnet50-11ad3fa6.pth"


def test_gem_pooling() -> None:
    x = torch.rand(2, 5, 7, 7)
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(-2, -1)))
    const = torch.full((1, 3, 4, 4), 2.5)
    torch.testing.assert_close(GeM()(const), torch.full((1, 3), 2.5))
    peaked = torch.zeros(1, 1, 4, 4)
    peaked[0, 0, 0, 0] = 16.0
    assert GeM(p=3.0)(peaked).item() > GeM(p=1.0)(peaked).item()  # favours strong responses


@pytest.mark.slow
def test_resnet_random_shapes_norms_and_reproducibility(
    random_resnet: ResNet50Gem, photos: dict[str, Image.Image]
) -> None:
    assert (random_resnet.role, random_resnet.name, random_resnet.dim) == ("cnn", "resnet50", 2048)
    assert random_resnet.weights.source == "random"
    batch = [random_resnet.preprocess(img) for img in photos.values()]
    v = random_resnet.embed(batch)
    assert v.shape == (3, 2048) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    again = ResNet50Gem("random")
    again.load()
    np.testing.assert_allclose(again.embed(batch[:1]), v[:1], atol=1e-5)


def test_effnet_random_is_reproducible(photos: dict[str, Image.Image]) -> None:
    a, b = EffNetLite0("random"), EffNetLite0("random")
    a.load()
    b.load()
    x = [a.preprocess(photos["coffee"])]
    np.testing.assert_allclose(a.embed(x), b.embed(x), atol=1e-5)
    assert a.weights.source == "random"


def test_effnet_bundled_weights_see_the_same_picture(
    bundled_effnet: EffNetLite0, photos: dict[str, Image.Image]
) -> None:
    m = bundled_effnet
    assert (m.name, m.dim, m.weights.source, m.weights.fallback) == (
        "effnet-lite0",
        1280,
        "bundled",
        False,
    )
    cat = photos["chelsea"]
    images = [cat, recompressed(cat), photos["coffee"], photos["astronaut"]]
    v = m.embed([m.preprocess(img) for img in images])
    assert v.shape == (4, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    same = cosine(v[0], v[1])
    assert same > 0.9
    assert cosine(v[0], v[2]) < same - 0.3
    assert cosine(v[0], v[3]) < same - 0.3


def test_resnet_imagenet_offline_with_an_empty_cache(tmp_path: Path, offline: Offline) -> None:
    model = ResNet50Gem("imagenet", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError) as err:
        model.load()
    message = str(err.value)
    assert RESNET_FILE in message and "LOOKALIKE_CNN_WEIGHTS" in message
    assert "LOOKALIKE_MODEL_CACHE_DIR" in message
    assert offline.attempts == [f"torch.hub:https://download.pytorch.org/models/{RESNET_FILE}"]


@pytest.mark.parametrize(("arch", "norms"), [("resnet18", 20), ("resnet50", 53)])
def test_folding_the_norms_into_the_convs_changes_no_vector(arch: str, norms: int) -> None:
    import copy

    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None)
    for bn in net.modules():  # trained-looking statistics, so that folding has work to do
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    folded = copy.deepcopy(net)
    assert fold_batch_norms(folded) == norms
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        want, got = net(x), folded(x)
    assert torch.nn.functional.cosine_similarity(want, got).min() > 0.99999
    assert fold_batch_norms(folded) == 0  # nothing left to fold


@pytest.fixture(scope="module")
def resnet_state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full torchvision ResNet-50 state dict (fc included), as a checkpoint file would be."""
    from torchvision.models import resnet50

    path = tmp_path_factory.mktemp("weights") / RESNET_FILE
    torch.manual_seed(1)
    torch.save(resnet50(weights=None).state_dict(), path)
    return path


@pytest.mark.slow
def test_resnet_imagenet_comes_from_the_cache_first(
    tmp_path: Path, offline: Offline, resnet_state_file: Path
) -> None:
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / RESNET_FILE).symlink_to(resnet_state_file)
    model = ResNet50Gem("imagenet", cache_dir=tmp_path)
    model.load()
    assert model.weights.source == "imagenet" and not model.weights.fallback
    assert offline.attempts == []


@pytest.mark.slow
def test_resnet_from_a_local_file(
    resnet_state_file: Path, random_resnet: ResNet50Gem, photos: dict[str, Image.Image]
) -> None:
    model = ResNet50Gem(str(resnet_state_file))
    model.load()
    assert model.weights.source == f"file:{resnet_state_file}"
    x = [model.preprocess(photos["coffee"])]
    assert cosine(model.embed(x)[0], random_resnet.embed(x)[0]) < 0.9999  # other weights


@pytest.mark.slow
@pytest.mark.parametrize("half", [False, True])
def test_a_resnet_file_gives_the_weights_it_holds(
    tmp_path: Path, random_resnet: ResNet50Gem, photos: dict[str, Image.Image], half: bool
) -> None:
    """Loaded into a network laid out on the meta device, fc left out of the file: every
    tensor the trunk uses is set, in fp32, and the vectors are the saved model's."""
    from torchvision.models import resnet50

    from embedder.weights import seeded

    state = seeded(lambda: resnet50(weights=None)).state_dict()
    trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model = ResNet50Gem(str(checkpoint_file(trunk, tmp_path / "resnet.pth", half=half)))
    model.load()
    assert model._module is not None
    tensors = [*model._module.parameters(), *model._module.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}
    x = [model.preprocess(im) for im in photos.values()]
    got, want = model.embed(x), random_resnet.embed(x)
    assert min(cosine(a, b) for a, b in zip(got, want, strict=True)) > (0.999 if half else 0.99999)


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not fit"):
        ResNet50Gem(str(bundled_effnet_lite0_path())).load()
    with pytest.raises(ModelLoadError, match=r"nope\.pth.*LOOKALIKE_CNN_WEIGHTS"):
        EffNetLite0(str(tmp_path / "nope.pth")).load()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        EffNetLite0(str(junk)).load()


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_effnet_candidates_run_faster_only_where_auto_keeps_fp32_for_fidelity(
    precision: str, photos: dict[str, Image.Image]
) -> None:
    """'auto' keeps EfficientNet-Lite0 in fp32 (bf16 fails the fidelity bound), but rows
    that only propose candidates (the windows of a query) may run in bf16 where the CPU has
    it natively; an explicit 'fp32' is kept for them too."""
    m = EffNetLite0("imagenet")
    m.load()
    m.tune(precision=precision)
    assert m.precision == "fp32"
    native = cpu_has_bf16()
    want = "bf16" if precision == "auto" and native else "fp32"
    assert m.candidate_precision == want
    x = [m.preprocess(photos[name]) for name in ("chelsea", "coffee", "astronaut")]
    full, rough = m.embed(x), m.embed_candidates(x)
    np.testing.assert_allclose(np.linalg.norm(rough, axis=1), 1.0, rtol=1e-5)
    cos = np.einsum("ij,ij->i", full, rough)
    if want == "fp32":
        np.testing.assert_allclose(rough, full, atol=1e-6)
    else:
        assert not np.allclose(rough, full, atol=1e-6)  # it really ran in bf16
        assert cos.min() >= 0.99
