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
- `CURRENT_IMAGE_KEY` ("current_image"): the image last uploaded or picked on any page
  (kind "upload" or "sample", name, key, and for uploads pixels and notes), shown on
  Compare, Rate-distortion and Inside the model until another is chosen or it is cleared.
"""
from __future__ import annotations

import gc
import hashlib
import sys
import time

import numpy as np
import streamlit as st

from aecore import weights
from aecore.codecs import Codec, get_codec
from aecore.imaging import shrink_to_pixels
from aecore import io as aeio
from aecore.io import ImageError, LoadedImage, load_image
from aecore.viewer import live_slider_parts

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"]
MODEL_KEY = "model"
OPERATING_POINT_KEY = "operating_point"
CURRENT_IMAGE_KEY = "current_image"
# Work a moved slider would throw away (SSIM, MS-SSIM, SSIMULACRA 2, heatmaps) starts once the page has
# been still this long: a new run starts at once beside the old one, which stops only at its
# next Streamlit call, so until then the two share the cores.
SETTLE_SECONDS = 0.4
# The before/after slider as a component that stays on the page (aecore.viewer.live_slider_parts).
_LIVE_SLIDER = st.components.v2.component("aecore_slider", **dict(zip(("html", "css", "js"), live_slider_parts())))
_CLEARS_KEY = "image_clears"  # bumped by "Clear": a fresh key empties every page's uploader


def settle(seconds: float = SETTLE_SECONDS) -> None:
    """Waits `seconds` with a Streamlit call every 50 ms, so that a run superseded meanwhile (the
    user moved a control again) stops here rather than after the slow work that follows."""
    spot = st.empty()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        spot.empty()  # a message to the browser: where Streamlit stops a superseded run


def live_slider(config: dict, height: int, key: str) -> None:
    """Shows `aecore.viewer.slider_config` output in the slider already on the page under `key`
    (a new one the first time): only the pictures that changed are decoded again, and the zoom,
    place and divider stay."""
    _LIVE_SLIDER(data=config, key=key, height=height)


_FROZEN = False  # freeze_long_lived_objects has run in this process


def freeze_long_lived_objects() -> None:
    """Once per process, when torch is loaded: moves every object alive now (modules, weights,
    Streamlit itself, about 280,000) out of the garbage collector's sight (`gc.freeze`).

    Why: Streamlit collects garbage after every script run (`runner.postScriptGC`), and that full
    pass over torch's objects took 0.12-0.2 s with the GIL held, so the next run (the quality slider
    moved again) waited for it. After the freeze a pass takes a few ms and still frees the runs'
    cyclic garbage. Turning the pass off instead let the server grow: after 24 uploads and 72
    quality steps 1.19 GB, against 1.07-1.08 GB with the pass and 1.12-1.14 GB with the freeze
    (what was alive at the freeze and later becomes cyclic garbage stays: once per process)."""
    global _FROZEN
    if not _FROZEN and "torch" in sys.modules:
        gc.freeze()
        _FROZEN = True


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


@st.cache_resource(show_spinner="Loading the codec...", max_entries=8)
def _load_codec(name: str, stamp: str) -> Codec:
    # `stamp` is only part of the cache key: new weights under the same name load afresh.
    return get_codec(name)


def codec(name: str) -> Codec:
    """The codec called `name`, loaded once per process and shared by every session.

    Codecs are read-only after loading; the learned codec serialises its entropy
    coding internally, so sharing one across sessions is safe.
    """
    return _load_codec(name, weights.stamp(name))


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
    files = list(files or [])
    for f, name in zip(files, unique_names([f.name for f in files])):
        try:
            loaded, key = read_upload(f)
        except ImageError as e:
            st.warning(f"Left out: {md_escape(e)}.", icon=":material/broken_image:")
            continue
        picked[name] = (key, loaded.pixels)
    return picked


def unique_names(names: list[str]) -> list[str]:
    """The names, a repeated one numbered ("a.png", "a.png (2)"), so each labels one file."""
    out: list[str] = []
    for name in names:
        label, i = name, 2
        while label in out:
            label, i = f"{name} ({i})", i + 1
        out.append(label)
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def downscaled(source_key: str, _pixels, max_pixels: int):
    """A large photo's copy of at most `max_pixels` (resizing 12 MP costs ~0.1 s: once)."""
    return shrink_to_pixels(_pixels, max_pixels)


def _sample_chosen(widget_key: str) -> None:
    st.session_state[CURRENT_IMAGE_KEY] = {"kind": "sample", "name": st.session_state[widget_key]}


def _upload_changed(widget_key: str) -> None:
    """The user removed the file from this page's uploader: the image it was is no longer current."""
    current = st.session_state.get(CURRENT_IMAGE_KEY)
    if not st.session_state.get(widget_key) and current and current["kind"] == "upload":
        del st.session_state[CURRENT_IMAGE_KEY]


def clear_image() -> None:
    """Forgets the current image on every page (and empties the uploaders) for the first sample."""
    st.session_state.pop(CURRENT_IMAGE_KEY, None)
    st.session_state[_CLEARS_KEY] = st.session_state.get(_CLEARS_KEY, 0) + 1


def _upload_key(prefix: str) -> str:
    clears = st.session_state.get(_CLEARS_KEY, 0)
    return prefix + "upload" + (f"_{clears}" if clears else "")


def uploaded_files(prefix: str = "") -> list:
    """Every file in the uploader of `pick_image(prefix, multiple=True)`, in upload order."""
    files = st.session_state.get(_upload_key(prefix))
    return list(files or [])


def pick_image(prefix: str = "", upload_help: str = "PNG, JPEG, WebP, TIFF, BMP or GIF.",
               sample_help: str = "Photos bundled with scikit-image. The image chosen on any page comes first.",
               multiple: bool = False) -> tuple[str, str, np.ndarray, list[str]] | None:
    """(name, cache key, pixels, conversion notes) from an upload or a sample photo; None after an error.

    Widget keys are PREFIX + "upload" and PREFIX + "sample" (and PREFIX + "clear_image"). The image
    uploaded or picked here becomes the session's current image (`CURRENT_IMAGE_KEY`), which the
    other pages then show, with a button that clears it. The cache key is the SHA-256 of the
    uploaded file (or the sample's name), so nothing hashes the decoded pixels on every rerun.
    `multiple`: the uploader takes several files and a picker (key PREFIX + "upload_pick")
    chooses the one returned (the first of a set uploaded together, the newest of files added
    later); `uploaded_files(prefix)` gives them all.
    """
    upload_key = _upload_key(prefix)
    upload = st.file_uploader("Your images" if multiple else "Your image", type=UPLOAD_TYPES, key=upload_key,
                              help=upload_help, on_change=_upload_changed, args=(upload_key,),
                              accept_multiple_files=multiple)
    if multiple:
        files = list(upload or [])
        labels = unique_names([f.name for f in files])
        seen_key, pick_key = prefix + "upload_seen", prefix + "upload_pick"
        added = [label for label in labels if label not in st.session_state.get(seen_key, labels)]
        if added:  # the first of the files just added is the one shown
            st.session_state[pick_key] = added[0]
        elif labels and st.session_state.get(pick_key) not in labels:
            st.session_state[pick_key] = labels[0]
        st.session_state[seen_key] = labels
        if len(files) > 1:
            shown = st.selectbox("Show", labels, key=pick_key,
                                 help="The uploaded image shown below; the zip download holds them all.")
            files = [files[labels.index(shown)]]
        upload = files[0] if files else None
    samples = aeio.sample_images()  # looked up at run time (tests swap the samples)
    names = list(samples)
    sample_key = prefix + "sample"
    current = st.session_state.get(CURRENT_IMAGE_KEY)
    if current and current["kind"] == "sample" and current["name"] in names:
        st.session_state[sample_key] = current["name"]
    elif st.session_state.get(sample_key) not in names:
        st.session_state[sample_key] = names[0]
    from_elsewhere = upload is None and current is not None and current["kind"] == "upload"
    sample = st.selectbox("Or a sample photo", names, key=sample_key, disabled=upload is not None or from_elsewhere,
                          persist_state="session", help=sample_help, on_change=_sample_chosen, args=(sample_key,))
    if upload is not None:
        try:
            loaded, key = read_upload(upload)
        except ImageError as e:
            st.error(f"Cannot use this file. {md_escape(e)}.", icon=":material/broken_image:")
            return None
        if not current or current.get("key") != key:
            st.session_state[CURRENT_IMAGE_KEY] = {"kind": "upload", "name": loaded.name, "key": key,
                                                   "pixels": loaded.pixels, "notes": loaded.notes}
        return loaded.name, key, loaded.pixels, loaded.notes
    if from_elsewhere:
        text, button = st.columns([3, 1], vertical_alignment="center")
        text.caption(f"Current image: **{md_escape(current['name'])}**, uploaded on another page; every page "
                     "shows it until you clear it or choose another.")
        button.button("Clear image", key=prefix + "clear_image", on_click=clear_image, icon=":material/close:",
                      help="Forget this image on every page and go back to the sample photos.")
        return current["name"], current["key"], current["pixels"], current["notes"]
    if not current:
        st.session_state[CURRENT_IMAGE_KEY] = {"kind": "sample", "name": sample}
    return sample, f"sample:{sample}", samples[sample], []


def export_buttons(item, target, command: str, keys: tuple[str, str], places=(st, st)) -> None:
    """Download buttons for a report item's slide figure (PNG) and offline HTML report, made on click."""
    from aecore import report  # here: only the pages that export load the report's drawing code

    prov = report.provenance(item.learned.codec, target, command, codecs=codec)
    stem = report.slug(item.name)
    places[0].download_button(
        "Figure (PNG)", lambda: report.figure_png(item, prov), file_name=f"{stem}.figure.png", mime="image/png",
        key=keys[0], on_click="ignore", icon=":material/slideshow:", width="stretch",
        help="A labelled slide: the whole picture and the same zoomed crop of the original and of each codec.")
    places[1].download_button(
        "Report (HTML)", lambda: report.html_report(report.assemble([item], target, command, codecs=codec)),
        file_name=f"{stem}.report.html", mime="text/html", key=keys[1], on_click="ignore",
        icon=":material/description:", width="stretch",
        help="One file that opens offline: slider, numbers, chart and how it was made.")

