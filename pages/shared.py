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

import hashlib

import numpy as np
import streamlit as st

from aecore import weights
from aecore.codecs import Codec, get_codec
from aecore.compare import shrink_to_pixels
from aecore import io as aeio
from aecore.io import ImageError, LoadedImage, load_image

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"]
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


# -- images ---------------------------------------------------------------------------------

def md_escape(text) -> str:
    """Text shown literally in Markdown (file names like `my_photo_*.png`)."""
    return "".join("\\" + c if c in "\\`*_[]<>|~$" else c for c in str(text))


@st.cache_data(max_entries=16, show_spinner=False)
def decode_upload(digest: str, _data: bytes, name: str) -> LoadedImage:
    """Uploaded bytes to pixels, once per file content (`digest` is the cache key)."""
    return load_image(_data, name=name)


def read_upload(upload) -> tuple[LoadedImage, str]:
    """An uploaded file's image and cache key ("upload:<sha256>"); raises ImageError."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    return decode_upload(digest, data, upload.name), f"upload:{digest}"


def read_uploads(files) -> dict[str, tuple[str, np.ndarray]]:
    """{unique name: (cache key, pixels)} of uploaded files; unreadable ones are left out with a warning."""
    picked: dict[str, tuple[str, np.ndarray]] = {}
    for f in files or []:
        try:
            loaded, key = read_upload(f)
        except ImageError as e:
            st.warning(f"Left out: {md_escape(e)}.", icon=":material/broken_image:")
            continue
        name, i = loaded.name, 2
        while name in picked:
            name, i = f"{loaded.name} ({i})", i + 1
        picked[name] = (key, loaded.pixels)
    return picked


@st.cache_data(max_entries=16, show_spinner=False)
def downscaled(source_key: str, _pixels, max_pixels: int):
    """A large photo's copy of at most `max_pixels` (resizing 12 MP costs ~0.1 s: once)."""
    return shrink_to_pixels(_pixels, max_pixels)


def follow_compare(key: str, names: list[str]) -> None:
    """Preselects the Compare page's sample photo in another page's picker whenever it changes there."""
    current, seen = st.session_state.get("sample"), f"{key}_follows"  # "sample": the Compare page's picker
    if current in names and st.session_state.get(seen) != current:
        st.session_state[key] = st.session_state[seen] = current
    elif st.session_state.get(key) not in names:
        st.session_state[key] = names[0]


def pick_image(prefix: str = "", upload_help: str = "PNG, JPEG, WebP, TIFF, BMP or GIF.",
               sample_help: str = "Photos bundled with scikit-image. The Compare page's choice comes first."
               ) -> tuple[str, str, np.ndarray, list[str]] | None:
    """(name, cache key, pixels, conversion notes) from an upload or a sample photo; None after an error.

    Widget keys are PREFIX + "upload" and PREFIX + "sample"; pages other than Compare (prefix "")
    follow the Compare page's sample. The cache key is the SHA-256 of the uploaded file (or the
    sample's name), so nothing hashes the decoded pixels on every rerun.
    """
    upload = st.file_uploader("Your image", type=UPLOAD_TYPES, key=prefix + "upload", help=upload_help)
    samples = aeio.sample_images()  # looked up at run time (tests swap the samples)
    names = list(samples)
    if prefix:
        follow_compare(prefix + "sample", names)
    sample = st.selectbox("Or a sample photo", names, key=prefix + "sample", disabled=upload is not None,
                          persist_state="session", help=sample_help)
    if upload is None:
        return sample, f"sample:{sample}", samples[sample], []
    try:
        loaded, key = read_upload(upload)
    except ImageError as e:
        st.error(f"Cannot use this file. {md_escape(e)}.", icon=":material/broken_image:")
        return None
    return loaded.name, key, loaded.pixels, loaded.notes
