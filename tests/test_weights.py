"""Named weights: importing an uploaded safetensors file and its model card, safely."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_tensors

from tests.conftest import file_sha256
from aecore import weights
from aecore.codecs import get_codec


@pytest.fixture
def pair(user_weights) -> tuple[bytes, bytes]:
    """The bytes of tiny-hyper's safetensors file and model card, as a browser would upload them."""
    return (user_weights / "tiny-hyper.safetensors").read_bytes(), (user_weights / "tiny-hyper.json").read_bytes()


def installed(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_good_pair_is_saved_verbatim_and_codes(pair, user_weights, photo):
    tensors, card = pair
    saved = weights.import_weights(tensors, card, "my-hyper")
    assert (user_weights / "my-hyper.safetensors").read_bytes() == tensors  # same hash: old streams stay valid
    assert saved["name"] == "my-hyper" and saved["sha256"] == json.loads(card)["sha256"]
    assert saved["label"] == "my-hyper (imported from tiny-hyper)" and saved["imported"]["from"] == "tiny-hyper"
    assert weights.read_card("my-hyper") == saved and "my-hyper" in weights.available()
    model, _ = weights.load("my-hyper")
    original, _ = weights.load("tiny-hyper")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    codec = get_codec("my-hyper")
    assert codec.decode(codec.encode(photo, 4)).shape == photo.shape
    assert not [p for p in user_weights.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_the_same_name_is_kept_when_free(pair, user_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(tmp_path / "elsewhere"))
    saved = weights.import_weights(*pair, "tiny-hyper")
    assert saved["label"] == "tiny-hyper" and weights.available()["tiny-hyper"].parent == tmp_path / "elsewhere"


def test_pickles_and_garbage_are_refused(pair, user_weights):
    tensors, card = pair
    before = installed(user_weights)
    model, _ = weights.load("tiny-hyper")
    pickled = io.BytesIO()
    torch.save(model.state_dict(), pickled)  # what a .pt/.pth checkpoint holds
    for data in (pickled.getvalue(), b"", b"\x00" * 64, b"not weights at all", tensors[:len(tensors) // 2]):
        with pytest.raises(weights.WeightsError, match="not a safetensors file"):
            weights.import_weights(data, card, "imported")
    for bad_card, message in ((b"{not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1, 2]", "no 'config'"),
                              (json.dumps({"name": "x"}).encode(), "no 'config'"),
                              (b" " * (weights.MAX_CARD_BYTES + 1), "a card is a small JSON file")):
        with pytest.raises(weights.WeightsError, match=message):
            weights.import_weights(tensors, bad_card, "imported")
    assert installed(user_weights) == before and "imported" not in weights.available()


def test_tensors_must_fit_the_cards_architecture(pair, user_weights):
    tensors, card = pair
    before = installed(user_weights)
    config = json.loads(card)["config"]
    wider = json.dumps({"config": {**config, "channels": 16}}).encode()
    with pytest.raises(weights.WeightsError, match=r"has shape \(8,"):
        weights.import_weights(tensors, wider, "imported")
    seed_card = (user_weights / "tiny-seed.json").read_bytes()
    with pytest.raises(weights.WeightsError, match="do not match the seed architecture"):
        weights.import_weights(tensors, seed_card, "imported")
    huge = json.dumps({"config": {**config, "channels": 100_000, "latent_channels": 100_000}}).encode()
    with pytest.raises(weights.WeightsError, match="has shape"):  # checked on shapes alone, nothing allocated
        weights.import_weights(tensors, huge, "imported")
    with pytest.raises(weights.WeightsError, match="unknown architecture"):
        weights.import_weights(tensors, json.dumps({"config": {**config, "arch": "gpt"}}).encode(), "imported")
    model, _ = weights.load("tiny-hyper")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    extra = save_tensors({**state, "extra.weight": torch.zeros(2)})
    with pytest.raises(weights.WeightsError, match="do not match the hyperprior architecture"):
        weights.import_weights(extra, card, "imported")
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][...] = float("nan")
    with pytest.raises(weights.WeightsError, match="NaN or infinite"):
        weights.import_weights(save_tensors(state), card, "imported")
    assert installed(user_weights) == before


def test_names_are_checked(pair, user_weights, tmp_path, monkeypatch):
    for bad in ("", "bad name", "../escape", "-dash", "x" * 65, "a/b", "evil\n"):
        with pytest.raises(weights.WeightsError, match="letters, digits"):
            weights.import_weights(*pair, bad)
    for reserved in ("hyperprior", "seed", "jpeg", "WebP"):
        with pytest.raises(weights.WeightsError, match="shipped weights or of a codec"):
            weights.import_weights(*pair, reserved)
    with pytest.raises(weights.WeightsError, match="exist already"):
        weights.import_weights(*pair, "tiny-seed")
    seed = weights.read_card("tiny-seed")
    weights.import_weights(*pair, "tiny-seed", overwrite=True)
    assert weights.read_card("tiny-seed")["config"]["arch"] == "hyperprior" != seed["config"]["arch"]

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "house.json").write_text("{}")
    (shipped / "house.safetensors").write_bytes(b"")
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped)
    with pytest.raises(weights.WeightsError, match="shipped"):
        weights.import_weights(*pair, "house")
    with pytest.raises(weights.WeightsError, match="shipped"):
        weights.import_weights(*pair, "House", overwrite=True)  # never shadows shipped weights
    assert not (user_weights / "house.safetensors").exists()
    json_files = sorted(p.name for p in user_weights.iterdir() if p.suffix == ".json")
    assert json_files == ["tiny-hyper.json", "tiny-seed.json"]


def test_reserved_names_cover_shipped_weights_and_codecs(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "Mine.safetensors").write_bytes(b"")
    monkeypatch.setattr(weights, "SHIPPED_DIR", shipped)
    names = weights.reserved_names()
    assert {"mine", "hyperprior", "seed", "jpeg"} <= names and all(n == n.lower() for n in names)
    assert np.all([n not in names for n in ("tiny-hyper", "my-photos")])


def test_reserved_names_are_the_registries_and_need_neither_codecs_nor_torch():
    import subprocess
    import sys
    from aecore import models, registry
    from aecore.codecs.base import CLASSICAL
    assert list(CLASSICAL) == list(registry.CLASSICAL_CODECS) and set(models.MODELS) == set(registry.ARCHITECTURES)
    assert {"jpeg", "webp", "avif", "jpeg2000", "jxl", "heic", "hyperprior", "seed"} <= weights.reserved_names()
    code = ("import sys; from aecore import weights; names = weights.reserved_names(); "
            "print(sorted(m for m in ('aecore.codecs', 'aecore.models', 'torch') if m in sys.modules), "
            "'jpeg' in names and 'seed' in names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["[]", "True"], out.stderr


def test_loading_weights_does_not_import_torchs_compiler_stack(user_weights):
    """Shape checks build the card's model on the meta device; tensor arithmetic there imports
    torch._dynamo (about a second). Checked in a fresh process, for both architectures."""
    import os
    import subprocess
    import sys
    code = ("import sys; from aecore import weights; "
            "[weights.load(n) for n in ('tiny-hyper', 'tiny-seed')]; "
            "print(sorted(m for m in ('torch', 'torch._dynamo') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root), "AECORE_USER_WEIGHTS": str(user_weights)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "['torch']"


def test_loaded_weights_are_the_files_tensors_as_trainable_parameters(user_weights):
    from safetensors.torch import load_file
    model, card = weights.load("tiny-hyper")
    saved = load_file(str(user_weights / "tiny-hyper.safetensors"))
    state = model.state_dict()
    assert set(state) == set(saved) and all(torch.equal(state[k], saved[k]) for k in saved)
    assert all(p.requires_grad and p.is_leaf and p.device.type == "cpu" for p in model.parameters())
    assert card["sha256"] == file_sha256(user_weights / "tiny-hyper.safetensors")
