"""Named weights: a safetensors file plus a JSON model card, found by name.

`weights/NAME.safetensors` holds tensors only (never pickles); `weights/NAME.json`
holds the architecture config (so the model is rebuilt without guessing shapes),
the training record and measured results. The weights hash (sha256 of the tensors
file) goes into every `.aec` stream, so a stream made by other weights is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import re
import tempfile

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import CompressionModel, ModelConfig, build_model

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_MODEL = "hyperprior"


class WeightsError(ValueError):
    """Weights that are missing, malformed or do not match their card."""


def user_dir() -> Path:
    """Folder for user (fine-tuned) weights; AECORE_USER_WEIGHTS overrides it."""
    return Path(os.environ.get("AECORE_USER_WEIGHTS", Path.home() / ".cache" / "aecore" / "weights"))


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise WeightsError(f"invalid weights name {name!r}: use letters, digits, '-' and '_' (max 64)")
    return name


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename over `path`: a crash leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: CompressionModel, name: str, folder: Path, card: dict | None = None) -> dict:
    """Writes NAME.safetensors and NAME.json atomically; returns the card."""
    check_name(name)
    folder = Path(folder)
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    target = folder / f"{name}.safetensors"
    atomic_write(target, lambda tmp: save_file(tensors, tmp))
    full = {**(card or {}), "name": name, "config": model.config.to_dict(),
            "parameters": sum(v.numel() for v in tensors.values()), "sha256": file_hash(target)}
    atomic_write(folder / f"{name}.json", lambda tmp: Path(tmp).write_text(json.dumps(full, indent=2) + "\n"))
    return full


def available() -> dict[str, Path]:
    """Names of all weights (shipped first; user weights never shadow shipped ones)."""
    found: dict[str, Path] = {}
    for folder in (SHIPPED_DIR, user_dir()):
        if folder.is_dir():
            for card in sorted(folder.glob("*.json")):
                if (card.with_suffix(".safetensors")).exists() and card.stem not in found:
                    found[card.stem] = card.with_suffix(".safetensors")
    return found


def read_card(name: str) -> dict:
    path = available().get(check_name(name))
    if path is None:
        raise WeightsError(f"no weights named {name!r}; available: {', '.join(available()) or 'none'}")
    return json.loads(path.with_suffix(".json").read_text())


def load_file_pair(path: Path) -> tuple[CompressionModel, dict]:
    """Builds the model described by PATH's card and loads PATH's tensors, shape-checked."""
    path = Path(path)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
        config = ModelConfig.from_dict(card["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path.with_suffix('.json').name}: unreadable model card ({e})") from None
    model = build_model(config)
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path.name}: not a safetensors file ({e})") from None
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise WeightsError(f"{path.name}: tensors do not match the {config.arch} architecture")
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise WeightsError(f"{path.name}: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict(tensors)
    card["sha256"] = file_hash(path)
    return model.eval(), card


def load(name: str) -> tuple[CompressionModel, dict]:
    """The model and card of named weights."""
    read_card(name)
    return load_file_pair(available()[name])


def update_card(name: str, fields: dict) -> dict:
    """Merges `fields` into NAME's card (e.g. measured results); the tensors are untouched."""
    card = read_card(name)
    card.update(fields)
    path = available()[name].with_suffix(".json")
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(card, indent=2) + "\n"))
    return card
