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
import time
from typing import TYPE_CHECKING

from safetensors import SafetensorError, safe_open

from . import registry
from .errors import WeightsError
from .io import atomic_write

if TYPE_CHECKING:  # torch is imported where a model is built: naming weights needs none of it
    from .models import CompressionModel, ModelConfig

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # whole name: fullmatch
NAME_RULE = "letters, digits, '-' and '_' (up to 64, starting with a letter or digit)"
DEFAULT_MODEL = "hyperprior"
MAX_CARD_BYTES = 1 << 20  # a model card is a few kilobytes of JSON; anything larger is not one


def user_dir() -> Path:
    """Folder for user (fine-tuned) weights; AECORE_USER_WEIGHTS overrides it."""
    return Path(os.environ.get("AECORE_USER_WEIGHTS", Path.home() / ".cache" / "aecore" / "weights"))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise WeightsError(f"invalid weights name {name!r}: use letters, digits, '-' and '_' (max 64)")
    return name


def stamp(name: str) -> str:
    """Changes whenever the named weights file is replaced (a fine-tuning run, an import) or
    another folder's file wins the name; "" when there are none. The one key of every cache of
    loaded weights (the codec registry's and the app's), cheap enough for every request."""
    path = available().get(name)
    if path is None:
        return ""
    st = path.stat()
    return f"{path}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def save(model: CompressionModel, name: str, folder: Path, card: dict | None = None) -> dict:
    """Writes NAME.safetensors and NAME.json atomically; returns the card."""
    from safetensors.torch import save as to_safetensors_bytes
    check_name(name)
    folder = Path(folder)
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    target = folder / f"{name}.safetensors"
    # Serialised here and written by atomic_write: safetensors' own save_file writes through a
    # temporary file of its own, which a killed process would leave behind under another name.
    data = to_safetensors_bytes(tensors)
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))
    full = {**(card or {}), "name": name, "config": model.config.to_dict(),
            "parameters": sum(v.numel() for v in tensors.values()), "sha256": hashlib.sha256(data).hexdigest()}
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
    return _read_card_file(path.with_suffix(".json"))


def _read_card_file(path: Path) -> dict:
    try:
        return _parse_card(path.read_bytes())
    except OSError as e:
        raise WeightsError(f"{path.name}: unreadable model card ({e.strerror or e})") from None
    except WeightsError as e:
        raise WeightsError(f"{path.name}: {e}") from None


def load_file_pair(path: Path) -> tuple[CompressionModel, dict]:
    """Builds the model described by PATH's card and loads PATH's tensors.

    Checked in order, before anything large is allocated: the card is JSON with a config
    this version can build (built on torch's "meta" device, so a card asking for a huge
    model costs nothing), the file's tensor names and shapes (from its header alone) match
    it; then the file is read once (hashed and loaded from the same bytes), its tensors must
    be finite, and they become the meta model's parameters (no second build, no random init).
    """
    import numpy as np
    from safetensors.torch import load as load_safetensors_bytes

    path = Path(path)
    card = _read_card_file(path.with_suffix(".json"))
    try:
        model = _meta_model(card)
    except WeightsError as e:
        raise WeightsError(f"{path.with_suffix('.json').name}: {e}") from None
    _check_header(path, {k: tuple(v.shape) for k, v in model.state_dict().items()}, model.config.arch)
    try:
        data = path.read_bytes()
        tensors = load_safetensors_bytes(data)
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path.name}: not a safetensors file ({e})") from None
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    # numpy, not torch.isfinite: 55 small torch calls cost a second when other processes keep
    # the cores busy (its thread pool waits on them), numpy's single-threaded check ~10 ms.
    if not all(np.isfinite(v.numpy()).all() for v in tensors.values() if v.is_floating_point()):
        raise WeightsError(f"{path.name}: the weights contain NaN or infinite values")
    model.load_state_dict(tensors, assign=True)
    card["sha256"] = hashlib.sha256(data).hexdigest()
    return model.eval(), card


def _meta_model(card: dict) -> CompressionModel:
    """The card's model on the meta device: shapes without storage. The architectures build
    there without tensor arithmetic (tests/test_weights.py checks it in a fresh process):
    arithmetic on meta tensors imports torch's compiler stack, a second on the first load."""
    import torch

    from .models import ModelConfig, build_model
    try:
        with torch.device("meta"):  # a card asking for a huge model costs nothing
            return build_model(ModelConfig.from_dict(card["config"]))
    except Exception as e:  # noqa: BLE001  (any config this version cannot build)
        raise WeightsError(f"the model card's config does not describe a model this version can build ({e})") from None


def meta_model(name: str) -> CompressionModel:
    """The model named weights describe, without their tensors: its `levels`, `stride`, shapes."""
    return _meta_model(read_card(name))


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


def reserved_names() -> set[str]:
    """Names user weights may not take (lower case): shipped weights, and every architecture
    (shipped or not yet) and classical codec name of `aecore.registry`, which the codec registry
    finds first; read from the ground floor, so naming weights imports no codec and no torch."""
    shipped = {p.stem for p in SHIPPED_DIR.glob("*.json")} | {p.stem for p in SHIPPED_DIR.glob("*.safetensors")}
    return {n.lower() for n in shipped | registry.names() | {DEFAULT_MODEL}}


def check_new_name(name: str, base: str | None = None, overwrite: bool = False, making=()) -> str:
    """NAME when new weights may take it; WeightsError says why not, in a sentence.

    The one naming rule for new weights (fine-tunes and imports): a valid name, not reserved
    (`reserved_names`), not the base they come from, not installed already (any case; unless
    `overwrite`, which replaces user weights only), and not being made by a queued or running
    job (`making`: names).
    """
    if not isinstance(name, str) or not name.strip():
        raise WeightsError(f"give the new weights a name: {NAME_RULE}")
    if not NAME_PATTERN.fullmatch(name):
        raise WeightsError(f"{name!r} cannot be a weights name: use {NAME_RULE}")
    if name.lower() in reserved_names():
        raise WeightsError(f"{name!r} is the name of shipped weights or of a codec; choose another name")
    if name == base:
        raise WeightsError(f"the new weights need a name other than the base {base!r}")
    if not overwrite and name.lower() in {n.lower() for n in available()}:
        raise WeightsError(f"weights named {name!r} exist already; choose another name")
    if name.lower() in {m.lower() for m in making}:
        raise WeightsError(f"a running or queued job is already making weights named {name!r}; "
                           "choose another name or cancel that job")
    return name


def suggest_name(stem: str, making=(), own: bool = False) -> str:
    """A name new weights may take: STEM itself (when `own`), else STEM-ft, STEM-ft2, ...

    A stem that is no valid name gives 'imported-ft'.
    """
    stem = stem[:56] if NAME_PATTERN.fullmatch(stem[:56]) else "imported"
    candidates = ([stem] if own else []) + [f"{stem}-ft"] + [f"{stem}-ft{i}" for i in range(2, 10_000)]
    for candidate in candidates:
        try:
            return check_new_name(candidate, making=making)
        except WeightsError:
            continue
    raise WeightsError(f"no free name starting with {stem!r}")


def import_weights(safetensors_bytes: bytes, card_bytes: bytes, name: str, overwrite: bool = False) -> dict:
    """Adds uploaded weights (a safetensors file and its JSON card) to the user weights as NAME.

    Why so careful: the bytes come from a browser. Nothing is unpickled (safetensors holds
    tensors only), the tensor shapes in the file header are checked against the card's
    architecture before anything is allocated (built on torch's "meta" device), then the
    pair is loaded for real by `load_file_pair` in a temporary folder, and the tensors must
    be finite. Only then are the two files written, atomically, into `user_dir()`: the
    tensors verbatim (so their hash, and the streams made with them, stay valid), then the
    card (which makes the pair visible to `available()`). Returns the saved card.
    """
    check_new_name(name, overwrite=overwrite)
    folder = user_dir()
    card = _parse_card(card_bytes)
    with tempfile.TemporaryDirectory(prefix="aecore-import-") as tmp:
        path = Path(tmp) / f"{name}.safetensors"
        path.write_bytes(safetensors_bytes)
        path.with_suffix(".json").write_text(json.dumps(card))
        model, loaded = load_file_pair(path)
    original = card.get("name")
    full = {**card, "name": name, "config": model.config.to_dict(), "sha256": loaded["sha256"],
            "parameters": sum(v.numel() for v in model.state_dict().values()),
            "imported": {"from": original, "at": time.strftime("%Y-%m-%d %H:%M:%S")}}
    if original != name:
        full["label"] = f"{name} (imported from {original})" if isinstance(original, str) else name
    text = json.dumps(full, indent=2) + "\n"
    atomic_write(folder / f"{name}.safetensors", lambda tmp: Path(tmp).write_bytes(safetensors_bytes))
    atomic_write(folder / f"{name}.json", lambda tmp: Path(tmp).write_text(text))
    return json.loads(text)  # the card as saved (JSON lists, not tuples)


def _parse_card(card_bytes: bytes) -> dict:
    if len(card_bytes) > MAX_CARD_BYTES:
        raise WeightsError(f"the model card is {len(card_bytes):,} bytes; a card is a small JSON file")
    try:
        card = json.loads(card_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        raise WeightsError(f"the model card is not JSON ({e})") from None
    if not isinstance(card, dict) or not isinstance(card.get("config"), dict):
        raise WeightsError("the model card has no 'config' (upload the .json file saved beside the weights)")
    return card


def _check_header(path: Path, expected: dict[str, tuple], arch: str) -> None:
    """The file's tensor names and shapes, read from its header alone, match the architecture."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # noqa: BLE001  (safetensors raises several types for malformed files)
        raise WeightsError(f"{path.name}: not a safetensors file ({e})") from None
    if set(shapes) != set(expected):
        raise WeightsError(f"{path.name}: the tensors do not match the {arch} architecture described by the card")
    for k, shape in shapes.items():
        if shape != expected[k]:
            raise WeightsError(f"{path.name}: {k} has shape {shape}, but the card's {arch} architecture "
                               f"needs {expected[k]}")
