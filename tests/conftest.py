"""Shared fixtures: tiny randomly initialised models saved as user weights (offline, fast)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from aecore import weights
from aecore.models import ModelConfig, build_model

TINY = {"tiny-hyper": ModelConfig(arch="hyperprior", channels=8, latent_channels=12),
        "tiny-seed": ModelConfig(arch="seed", channels=8, latent_channels=12, depth=2)}
# every architecture, for the model-level tests (the app's tests take the two above)
TINY_MODELS = {**TINY, "tiny-seedhp": ModelConfig(arch="seed-hyperprior", channels=8, latent_channels=12, depth=2)}


def make_tiny(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(TINY_MODELS[name])
    with torch.no_grad():  # larger latents than a fresh init, so streams carry real symbols
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


@pytest.fixture(autouse=True)
def hide_shipped_weights(request, monkeypatch, tmp_path_factory):
    """Tests see only the weights they make, unless marked `shipped` (the real trained weights)."""
    if "shipped" not in request.keywords:
        monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path_factory.mktemp("no_shipped_weights"))


@pytest.fixture
def user_weights(tmp_path, monkeypatch):
    """A user-weights folder holding tiny-hyper and tiny-seed."""
    folder = tmp_path / "user_weights"
    monkeypatch.setenv("AECORE_USER_WEIGHTS", str(folder))
    for name in TINY:
        weights.save(make_tiny(name), name, folder, {"label": name})
    return folder


@pytest.fixture
def photo() -> np.ndarray:
    """A natural 96x128 RGB crop (scikit-image's bundled astronaut)."""
    from skimage.data import astronaut
    return np.ascontiguousarray(astronaut()[100:196, 160:288])


def file_sha256(path) -> str:
    """The SHA-256 a weights card must give for its file, computed here independently of aecore."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser tests; they are skipped where it is not installed."""
    import shutil
    from .test_browser import ARTIFACTS
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser test needs it")
    ARTIFACTS.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser_app(chromium, tmp_path_factory):
    """One `streamlit run` for every browser test (a start costs more than most of them): the tiny
    weights as user weights, its own jobs folder and one job at a time; yields (url, jobs folder)."""
    from .test_browser import streamlit_server, tiny_weights_folder
    folder = tiny_weights_folder(tmp_path_factory.mktemp("browser_weights"))
    jobs = tmp_path_factory.mktemp("browser_jobs")
    with streamlit_server(folder, AECORE_JOBS_DIR=str(jobs), AECORE_MAX_JOBS="1") as (url, _):
        yield url, jobs


@pytest.fixture
def server(browser_app) -> str:
    """The browser tests' app server's URL."""
    return browser_app[0]
