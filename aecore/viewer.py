"""A self-contained before/after slider for comparing decoded images pixel by pixel.

    html = slider_html({"Original": img, "Learned": a, "JPEG": b}, left="Learned", right="JPEG")
    streamlit.components.v1.html(html, height=600)     # or write it to a file and open it

Why our own: a codec comparison must show the decoded pixels exactly. The common
Streamlit component (streamlit-image-comparison) loads its script from a CDN, so it fails
offline, and it re-encodes both images as JPEG, which adds JPEG's own artifacts to the
learned codec's side. Here every image is embedded as a lossless data URI (WebP, PNG past
WebP's size limit), and the
page is plain HTML/CSS/JS with no external URL (package data: `aecore/data/slider.*`).

What it does:
- a divider to drag (mouse, pen or touch; arrow keys move it, Shift for bigger steps);
- zoom with the wheel, pinch or the +/- buttons from "fit" up to 16 screen pixels per image
  pixel; past 100% the pixels are drawn as squares (`image-rendering: pixelated`), so
  each real pixel is visible; "1:1" shows one image pixel per CSS pixel;
- pan by dragging when zoomed in (or with Shift/Alt/Ctrl held at any zoom);
- both sides share one transform, so they always show the same spot;
- two selects choose which images are compared, and a button swaps them.
Images larger than the component are scaled to fit at first; small ones are enlarged by a
whole factor, so their pixels stay square. Browser tests find the parts by id/class:
`#aec-slider` (root, whose `data-pos` and `data-scale` give the divider position in 0..1
and the zoom), `.aec-stage`, `.aec-divider`, `#aec-left`, `#aec-right`, `.aec-zoom-in`.
"""
from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import functools
import html
from importlib import resources
import json
import re

import numpy as np

from .io import to_lossless_bytes, to_png_bytes

TOOLBAR_PX = 46   # the toolbar row above the picture (see .aec-toolbar in the CSS)
MAX_ZOOM = 16     # screen pixels per image pixel at the deepest zoom
# zlib level of the PNGs: level 1 takes about 0.07 s for 768x512 where Pillow's default (6)
# takes about 0.18 s, and on photos its files are about as small (kodim05: 801 KB against
# 814 KB). Still lossless: only the deflate search is shorter.
PNG_LEVEL = 1
# The slider's pictures are lossless WebP at its fastest setting: on kodim05 617 KB in 0.05 s
# against the level-1 PNG's 802 KB in 0.08 s, the same pixels. The slider's page is resent at
# every step, and the browser's share of a step grows with its size. WebP stops at 16383 px.
WEBP_MAX_SIDE = 16383


def png_data_uri(pixels: np.ndarray) -> str:
    """A lossless `data:image/png;base64,...` URI of uint8 RGB or gray pixels."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(pixels, PNG_LEVEL)).decode("ascii")


def image_data_uri(pixels: np.ndarray) -> str:
    """A lossless data URI of uint8 RGB or gray pixels: WebP (gray as equal RGB), or PNG where
    the image is too large for WebP."""
    if max(pixels.shape[:2]) > WEBP_MAX_SIDE:
        return png_data_uri(pixels)
    data = to_lossless_bytes(pixels, "WEBP", lossless=True, method=0, quality=0)
    return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class EncodedImage:
    """An image already made into its data URI (`encode_image`), for a slider to embed as it is:
    a caller showing the same picture in many sliders (the original, step after step) encodes it once."""

    uri: str
    shape: tuple[int, int]  # (height, width)


def encode_image(pixels: np.ndarray) -> EncodedImage:
    return EncodedImage(image_data_uri(pixels), tuple(pixels.shape[:2]))


def slider_config(images: dict[str, np.ndarray | EncodedImage], left: str, right: str, height: int = 560,
                  original: str | None = None) -> dict:
    """What the slider's script shows (`update(config)` in slider.js), as JSON-ready data: every
    image as its data URI, the sides, the size. The checks and encoding of `slider_html`, which embeds
    it in a page; the app's live slider sends it to the page it already shows (`live_slider_parts`)."""
    if not images:
        raise ValueError("slider_html needs at least one image")
    for side, label in (("left", left), ("right", right)) + ((("original", original),) if original else ()):
        if label not in images:
            raise ValueError(f"{side} image {label!r} is not among the images: {', '.join(images)}")
    sizes = {tuple(p.shape[:2]) for p in images.values()}  # EncodedImage.shape is (height, width) too
    if len(sizes) != 1:
        raise ValueError(f"all images must have one size to be compared, got {sorted(sizes)}")
    (h, w), = sizes
    raw = [label for label, p in images.items() if not isinstance(p, EncodedImage)]
    with ThreadPoolExecutor(max(1, len(raw))) as pool:
        made = dict(zip(raw, pool.map(image_data_uri, [images[label] for label in raw])))
    uris = {label: made[label] if label in made else p.uri for label, p in images.items()}
    return {"images": uris, "names": list(images), "left": left, "right": right, "width": int(w), "height": int(h),
            "maxZoom": MAX_ZOOM, "original": original, "frame": max(int(height), TOOLBAR_PX + 120)}


def slider_html(images: dict[str, np.ndarray | EncodedImage], left: str, right: str, height: int = 560,
                original: str | None = None) -> str:
    """The slider as one HTML document comparing `images[left]` and `images[right]`.

    All images must share one size (height x width); an image may come already encoded
    (`EncodedImage`), and the others are encoded side by side on threads (the encoders release the
    GIL). `height` is the component's total height in CSS pixels, toolbar included. With
    `original` (one of the images), a 3-up view shows it beside both sides at one zoom and place.
    """
    config = slider_config(images, left, right, height, original)
    # "</" inside a script would end it early; JSON allows the escaped form.
    config_json = json.dumps(config).replace("</", "<\\/")

    def options(selected: str) -> str:
        return "".join(
            '<option value="{}"{}>{}</option>'.format(html.escape(k, quote=True), " selected" if k == selected else "",
                                                      html.escape(k))
            for k in images)

    fields = {"HEIGHT": str(config["frame"]), "LEFT_OPTIONS": options(left), "RIGHT_OPTIONS": options(right),
              "LEFT_LABEL": html.escape(left), "RIGHT_LABEL": html.escape(right),
              "SIZE": f"{config['width']}&times;{config['height']}", "CONFIG": config_json}
    # One pass, so a label that happens to contain "__SIZE__" stays a label.
    return _PLACEHOLDER.sub(lambda m: fields[m.group(1)], _template())


@functools.cache
def live_slider_parts() -> tuple[str, str, str]:
    """(markup, styles, script module) of a slider that stays on its page and takes each new
    `slider_config` through the module's default export (`export default function ({data,
    parentElement})`, the contract of Streamlit's components v2). Resending a whole slider page
    at every step made the browser parse it and decode every picture again, the unchanged
    original too, and reset the zoom and place; this one swaps only the pictures that changed."""
    data = resources.files("aecore") / "data"
    page = (data / "slider.html").read_text(encoding="utf-8")
    start, end = page.index('<div id="aec-slider"'), page.index("<script>")
    empty = {"HEIGHT": "560", "LEFT_OPTIONS": "", "RIGHT_OPTIONS": "", "LEFT_LABEL": "", "RIGHT_LABEL": "",
             "SIZE": "", "CONFIG": "null"}
    markup = _PLACEHOLDER.sub(lambda m: empty[m.group(1)], page[start:end])
    styles = _PLACEHOLDER.sub(lambda m: empty[m.group(1)], (data / "slider.css").read_text(encoding="utf-8"))
    script = (data / "slider.js").read_text(encoding="utf-8") + (
        "\nexport default function ({data, parentElement}) {\n"
        "  const root = parentElement.querySelector(\"#aec-slider\");\n"
        "  root.aecSlider = root.aecSlider || aecSlider(root);\n"
        "  root.aecSlider.update(data);\n"
        "}\n")
    return markup, styles, script


_PLACEHOLDER = re.compile(r"__(HEIGHT|LEFT_OPTIONS|RIGHT_OPTIONS|LEFT_LABEL|RIGHT_LABEL|SIZE|CONFIG)__")


@functools.cache
def _template() -> str:
    """The page from package data (`aecore/data/slider.html`, `.css`, `.js`), styles and script inlined.

    Inlined rather than linked: the component is one self-contained document with no URL to fetch.
    """
    data = resources.files("aecore") / "data"
    page = (data / "slider.html").read_text(encoding="utf-8")
    return (page.replace("__STYLE__", (data / "slider.css").read_text(encoding="utf-8"))
                .replace("__SCRIPT__", (data / "slider.js").read_text(encoding="utf-8")))
