"""Streamlit helpers shared by the router (streamlit_app.py) and the pages.

Why here: with `st.navigation`, a file in `pages/` is a page only if streamlit_app.py
lists it, so this module is never shown as a page. Streamlit puts the entry point's
folder on `sys.path`, so every page (and every test) imports it as `pages.shared`.
Everything that is not about Streamlit lives in `aecore`; this module only caches and
remembers.

Session state keys that every page may read:
- `MODEL_KEY` ("model"): the learned weights chosen in the sidebar (a name from
  `aecore.weights.available()`), or None when no learned weights are installed.
- `OPERATING_POINT_KEY` ("operating_point"): the Compare page's last result, a dict
  with codec, label, quality, bytes, bpp, psnr, ms_ssim, image (name) and
  size ("WxH"), for the Rate-distortion page to mark on its curves.
"""
from __future__ import annotations

import streamlit as st

from aecore import weights
from aecore.codecs import Codec, get_codec

MODEL_KEY = "model"
OPERATING_POINT_KEY = "operating_point"


def learned_models() -> dict[str, str]:
    """Installed learned weights, name -> display label (from the model card)."""
    labels = {}
    for name in weights.available():
        try:
            labels[name] = weights.read_card(name).get("label") or name
        except (OSError, ValueError):  # an unreadable card: still offer the name
            labels[name] = name
    return labels


def default_model(names) -> str | None:
    """DEFAULT_MODEL when installed, else the first learned weights, else None."""
    names = list(names)
    if weights.DEFAULT_MODEL in names:
        return weights.DEFAULT_MODEL
    return names[0] if names else None


def selected_model() -> str | None:
    """The learned weights picked in the sidebar, if they are still installed."""
    name = st.session_state.get(MODEL_KEY)
    available = weights.available()
    return name if name in available else default_model(available)


def weights_stamp(name: str) -> str:
    """Changes whenever the named weights file is replaced (e.g. by a fine-tuning run)."""
    path = weights.available().get(name)
    if path is None:
        return ""
    st_ = path.stat()
    return f"{path}:{st_.st_mtime_ns}:{st_.st_size}"


@st.cache_resource(show_spinner="Loading the codec...", max_entries=8)
def _load_codec(name: str, stamp: str) -> Codec:
    # `stamp` is only part of the cache key: new weights under the same name load afresh.
    return get_codec(name)


def codec(name: str) -> Codec:
    """The codec called `name`, loaded once per process and shared by every session.

    Codecs are read-only after loading; the learned codec serialises its entropy
    coding internally, so sharing one across sessions is safe.
    """
    return _load_codec(name, weights_stamp(name) if name in weights.available() else "")
