"""Building a network with its weights (embedder/weights.py): the fixed seed, state dict
files, and the module made ready for inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from embedder.errors import ModelLoadError
from embedder.nets import PixelInput
from embedder.preprocess import InputSpec, normalise
from embedder.weights import RANDOM_SEED, for_inference, load_state_dict_file, seeded

SPEC = InputSpec(resize=8, crop=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def test_seeded_builds_are_reproducible_and_leave_the_rng_alone() -> None:
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    a = seeded(lambda: torch.nn.Linear(4, 3))
    b = seeded(lambda: torch.nn.Linear(4, 3))
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(RANDOM_SEED)
    torch.testing.assert_close(torch.nn.Linear(4, 3).weight, a.weight, rtol=0, atol=0)


def state() -> dict[str, torch.Tensor]:
    return {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}


@pytest.mark.parametrize("wrap", ["plain", "nested", "data-parallel"])
def test_a_torch_state_dict_file(tmp_path: Path, wrap: str) -> None:
    obj: object = state()
    if wrap == "nested":
        obj = {"state_dict": state(), "epoch": 3}
    elif wrap == "data-parallel":
        obj = {f"module.{k}": v for k, v in state().items()}
    path = tmp_path / "weights.pth"
    torch.save(obj, path)
    got = load_state_dict_file(path, model="m", setting="LOOKALIKE_X")
    assert set(got) == {"w", "b"}
    torch.testing.assert_close(got["w"], state()["w"])


def test_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(state(), str(path))
    got = load_state_dict_file(path, model="m", setting="LOOKALIKE_X")
    torch.testing.assert_close(got["b"], state()["b"])


def test_unusable_files_name_the_file_and_the_setting(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    cases = {tmp_path / "nope.pth": "does not exist", junk: "cannot be read", empty: "no state"}
    for path, why in cases.items():
        with pytest.raises(ModelLoadError, match=why) as err:
            load_state_dict_file(path, model="m", setting="LOOKALIKE_X")
        assert str(path) in str(err.value)
        assert (err.value.model, err.value.setting) == ("m", "LOOKALIKE_X")


def test_for_inference_freezes_the_module_and_normalises_pixels() -> None:
    net = torch.nn.Flatten()  # the identity on the normalised pixels, flattened
    net.train()
    module, runner = for_inference(net, SPEC, "cpu")
    assert module is net and not module.training
    assert isinstance(runner, PixelInput) and not runner.training and runner.net is net
    linear, _ = for_inference(torch.nn.Linear(2, 2), SPEC, "cpu")
    assert not any(p.requires_grad for p in linear.parameters())
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    with torch.inference_mode():
        got = runner(torch.from_numpy(pixels)).numpy()
    want = np.stack([normalise(p, SPEC).reshape(-1) for p in pixels])
    np.testing.assert_array_equal(got, want)  # bit for bit, as PixelInput promises
