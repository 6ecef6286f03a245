"""A self-contained before/after slider for comparing decoded images pixel by pixel.

    html = slider_html({"Original": img, "Learned": a, "JPEG": b}, left="Learned", right="JPEG")
    streamlit.components.v1.html(html, height=600)     # or write it to a file and open it

Why our own: a codec comparison must show the decoded pixels exactly. The common
Streamlit component (streamlit-image-comparison) loads its script from a CDN, so it fails
offline, and it re-encodes both images as JPEG, which adds JPEG's own artifacts to the
learned codec's side. Here every image is embedded as a lossless PNG data URI, and the
page is plain HTML/CSS/JS with no external URL.

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
import html
import json

import numpy as np

from .io import to_png_bytes

TOOLBAR_PX = 46   # the toolbar row above the picture (see .aec-toolbar in the CSS)
MAX_ZOOM = 16     # screen pixels per image pixel at the deepest zoom


def png_data_uri(pixels: np.ndarray) -> str:
    """A lossless `data:image/png;base64,...` URI of uint8 RGB or gray pixels."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(pixels)).decode("ascii")


def slider_html(images: dict[str, np.ndarray], left: str, right: str, height: int = 560) -> str:
    """The slider as one HTML document comparing `images[left]` and `images[right]`.

    All images must share one size (height x width). `height` is the component's
    total height in CSS pixels, toolbar included.
    """
    if not images:
        raise ValueError("slider_html needs at least one image")
    for side, label in (("left", left), ("right", right)):
        if label not in images:
            raise ValueError(f"{side} image {label!r} is not among the images: {', '.join(images)}")
    sizes = {tuple(p.shape[:2]) for p in images.values()}
    if len(sizes) != 1:
        raise ValueError(f"all images must have one size to be compared, got {sorted(sizes)}")
    (h, w), = sizes
    height = max(int(height), TOOLBAR_PX + 120)
    uris = {label: png_data_uri(pixels) for label, pixels in images.items()}
    config = {"images": uris, "left": left, "right": right, "width": int(w), "height": int(h),
              "maxZoom": MAX_ZOOM}
    # "</" inside a script would end it early; JSON allows the escaped form.
    config_json = json.dumps(config).replace("</", "<\\/")

    def options(selected: str) -> str:
        return "".join(
            '<option value="{}"{}>{}</option>'.format(html.escape(k, quote=True), " selected" if k == selected else "",
                                                      html.escape(k))
            for k in images)

    return (_TEMPLATE
            .replace("__HEIGHT__", str(height))
            .replace("__LEFT_OPTIONS__", options(left))
            .replace("__RIGHT_OPTIONS__", options(right))
            .replace("__LEFT_LABEL__", html.escape(left))
            .replace("__RIGHT_LABEL__", html.escape(right))
            .replace("__SIZE__", f"{w}&times;{h}")
            .replace("__CONFIG__", config_json))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<style>
  html, body { margin: 0; padding: 0; background: transparent; }
  * { box-sizing: border-box; }
  .aec-slider {
    height: __HEIGHT__px; display: flex; flex-direction: column; outline: none;
    font-family: "Source Sans 3", "Source Sans Pro", system-ui, -apple-system, "Segoe UI", sans-serif;
    font-size: 14px; color: #31333f; border: 1px solid rgba(49, 51, 63, 0.18);
    border-radius: 10px; overflow: hidden; background: #ffffff;
  }
  .aec-slider:focus-visible { box-shadow: 0 0 0 2px rgba(255, 75, 75, 0.6); }
  .aec-toolbar {
    height: 46px; flex: 0 0 46px; display: flex; align-items: center; gap: 8px; padding: 0 10px;
    background: #f0f2f6; border-bottom: 1px solid rgba(49, 51, 63, 0.12); white-space: nowrap; overflow: hidden;
  }
  .aec-pick { display: flex; align-items: center; gap: 6px; color: #555867; font-size: 13px; min-width: 0; }
  .aec-pick select {
    font: inherit; font-size: 14px; color: #31333f; background: #fff; min-width: 0; max-width: 260px;
    border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 6px; padding: 4px 8px; cursor: pointer;
  }
  .aec-toolbar button {
    font: inherit; font-size: 15px; line-height: 1; color: #31333f; background: #fff; cursor: pointer;
    border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 6px; padding: 5px 9px; min-width: 32px;
  }
  .aec-toolbar button:hover, .aec-pick select:hover { border-color: #ff4b4b; color: #ff4b4b; }
  .aec-spacer { flex: 1 1 auto; }
  .aec-zoom-level { min-width: 74px; text-align: center; font-variant-numeric: tabular-nums; color: #555867; }
  .aec-size { color: #808495; font-size: 12px; margin-right: 4px; }
  .aec-stage {
    position: relative; flex: 1 1 auto; overflow: hidden; cursor: ew-resize; touch-action: none;
    background-color: #1b1d23;
    background-image: linear-gradient(45deg, #22252c 25%, transparent 25%, transparent 75%, #22252c 75%),
                      linear-gradient(45deg, #22252c 25%, transparent 25%, transparent 75%, #22252c 75%);
    background-size: 24px 24px; background-position: 0 0, 12px 12px;
    user-select: none; -webkit-user-select: none;
  }
  .aec-slider.aec-zoomed .aec-stage { cursor: grab; }
  .aec-slider.aec-panning .aec-stage { cursor: grabbing; }
  .aec-layer { position: absolute; inset: 0; overflow: hidden; }
  .aec-img {
    position: absolute; left: 0; top: 0; transform-origin: 0 0; max-width: none; max-height: none;
    pointer-events: none; -webkit-user-drag: none; image-rendering: auto;
  }
  .aec-slider.aec-pixelated .aec-img { image-rendering: pixelated; }
  .aec-divider {
    position: absolute; top: 0; bottom: 0; width: 30px; margin-left: -15px; cursor: ew-resize; z-index: 3;
  }
  .aec-divider::before {
    content: ""; position: absolute; top: 0; bottom: 0; left: 14px; width: 2px;
    background: #ffffff; box-shadow: 0 0 0 1px rgba(0, 0, 0, 0.35), 0 0 8px rgba(0, 0, 0, 0.45);
  }
  .aec-handle {
    position: absolute; top: 50%; left: 50%; width: 38px; height: 38px; margin: -19px 0 0 -19px;
    border-radius: 50%; background: #ffffff; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.45);
    display: flex; align-items: center; justify-content: center; gap: 2px; color: #31333f;
  }
  .aec-handle svg { width: 22px; height: 22px; }
  .aec-label {
    position: absolute; top: 10px; z-index: 2; max-width: 45%; overflow: hidden; text-overflow: ellipsis;
    white-space: nowrap; padding: 4px 10px; border-radius: 999px; font-size: 13px; font-weight: 600;
    color: #ffffff; background: rgba(14, 17, 23, 0.72); pointer-events: none;
  }
  .aec-label-left { left: 10px; }
  .aec-label-right { right: 10px; }
  .aec-hint {
    position: absolute; bottom: 10px; left: 50%; transform: translateX(-50%); z-index: 2;
    padding: 3px 10px; border-radius: 999px; font-size: 12px; color: rgba(255, 255, 255, 0.85);
    background: rgba(14, 17, 23, 0.55); pointer-events: none; transition: opacity 0.6s; white-space: nowrap;
  }
  .aec-slider.aec-touched .aec-hint { opacity: 0; }
</style></head>
<body>
<div id="aec-slider" class="aec-slider" tabindex="0" data-pos="0.5" data-scale="1"
     aria-label="Before/after comparison: arrow keys move the divider, plus and minus zoom">
  <div class="aec-toolbar">
    <label class="aec-pick">Left
      <select id="aec-left" class="aec-select" aria-label="Left image">__LEFT_OPTIONS__</select></label>
    <button type="button" class="aec-swap" title="Swap sides" aria-label="Swap sides">&#8644;</button>
    <label class="aec-pick">Right
      <select id="aec-right" class="aec-select" aria-label="Right image">__RIGHT_OPTIONS__</select></label>
    <span class="aec-spacer"></span>
    <span class="aec-size">__SIZE__ px</span>
    <button type="button" class="aec-zoom-out" title="Zoom out (-)" aria-label="Zoom out">&minus;</button>
    <span class="aec-zoom-level">Fit</span>
    <button type="button" class="aec-zoom-in" title="Zoom in (+)" aria-label="Zoom in">+</button>
    <button type="button" class="aec-fit" title="Fit to view (0)">Fit</button>
    <button type="button" class="aec-one" title="One image pixel per screen pixel (1)">1:1</button>
  </div>
  <div class="aec-stage">
    <div class="aec-layer aec-layer-right"><img class="aec-img" id="aec-img-right" alt="" draggable="false"></div>
    <div class="aec-layer aec-layer-left"><img class="aec-img" id="aec-img-left" alt="" draggable="false"></div>
    <div class="aec-divider" role="slider" aria-label="Divider position"
         aria-valuemin="0" aria-valuemax="100" aria-valuenow="50">
      <div class="aec-handle"><svg viewBox="0 0 24 24" fill="currentColor" aria-hidden="true">
        <path d="M9 6l-6 6 6 6z M15 6l6 6-6 6z"/></svg></div>
    </div>
    <div class="aec-label aec-label-left">__LEFT_LABEL__</div>
    <div class="aec-label aec-label-right">__RIGHT_LABEL__</div>
    <div class="aec-hint">Drag to compare &middot; scroll or +/&minus; to zoom &middot; drag to pan when zoomed</div>
  </div>
</div>
<script>
(function () {
  "use strict";
  const C = __CONFIG__;
  const W = C.width, H = C.height, MAX = C.maxZoom;
  const root = document.getElementById("aec-slider");
  const stage = root.querySelector(".aec-stage");
  const layerLeft = root.querySelector(".aec-layer-left");
  const imgLeft = document.getElementById("aec-img-left");
  const imgRight = document.getElementById("aec-img-right");
  const divider = root.querySelector(".aec-divider");
  const selLeft = document.getElementById("aec-left");
  const selRight = document.getElementById("aec-right");
  const labelLeft = root.querySelector(".aec-label-left");
  const labelRight = root.querySelector(".aec-label-right");
  const zoomLevel = root.querySelector(".aec-zoom-level");

  let pos = 0.5;              // divider, as a fraction of the stage width
  let scale = 1, tx = 0, ty = 0, fit = 1, atFit = true;
  let drag = null;            // {mode: "divider"|"pan"|"pinch", ...}
  const pointers = new Map(); // pointerId -> {x, y}, for pinch zoom

  for (const img of [imgLeft, imgRight]) {
    img.width = W; img.height = H; img.style.width = W + "px"; img.style.height = H + "px";
  }

  function size() { const r = stage.getBoundingClientRect(); return [r.width || 1, r.height || 1, r.left, r.top]; }
  function fitScale() {
    const [sw, sh] = size();
    const f = Math.min(sw / W, sh / H);
    return f >= 1 ? Math.min(Math.floor(f), 8) : f;  // enlarge small images by whole factors only
  }
  function minScale() { return Math.min(fit, 1); }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function percent(s) { return (s * 100 >= 99.5 ? Math.round(s * 100) : (s * 100).toFixed(s < 0.1 ? 1 : 0)) + "%"; }

  function setImages(left, right) {
    imgLeft.src = C.images[left]; imgRight.src = C.images[right];
    labelLeft.textContent = left; labelRight.textContent = right;
    selLeft.value = left; selRight.value = right;
  }

  function render() {
    const [sw, sh] = size();
    const iw = W * scale, ih = H * scale;
    tx = iw <= sw ? (sw - iw) / 2 : clamp(tx, sw - iw, 0);
    ty = ih <= sh ? (sh - ih) / 2 : clamp(ty, sh - ih, 0);
    if (scale >= 1) { tx = Math.round(tx); ty = Math.round(ty); }  // whole-pixel offsets keep pixels crisp
    const t = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
    imgLeft.style.transform = t; imgRight.style.transform = t;
    const x = clamp(pos, 0, 1) * sw;
    layerLeft.style.clipPath = "inset(0 " + (sw - x) + "px 0 0)";
    divider.style.left = x + "px";
    divider.setAttribute("aria-valuenow", String(Math.round(pos * 100)));
    root.classList.toggle("aec-pixelated", scale > 1.0001);
    root.classList.toggle("aec-zoomed", scale > fit * 1.0001);
    zoomLevel.textContent = atFit ? "Fit " + percent(scale) : percent(scale);
    root.dataset.pos = pos.toFixed(4);
    root.dataset.scale = scale.toFixed(4);
  }

  function zoomTo(s, cx, cy) {
    const [sw, sh] = size();
    if (cx === undefined) { cx = sw / 2; cy = sh / 2; }
    s = clamp(s, minScale(), MAX);
    const ix = (cx - tx) / scale, iy = (cy - ty) / scale;  // image point under the cursor stays put
    scale = s; atFit = Math.abs(s - fit) < 1e-6;
    tx = cx - ix * s; ty = cy - iy * s;
    render();
  }
  function toFit() { fit = fitScale(); scale = fit; atFit = true; render(); }
  function setPos(p) { pos = clamp(p, 0, 1); render(); }
  function touched() { root.classList.add("aec-touched"); }

  // Zoom steps: whole powers of two around 100%, so 1:1, 2x, 4x ... are always reachable.
  function stepZoom(dir, cx, cy) {
    const k = Math.log2(scale);
    const next = dir > 0 ? Math.floor(k + 1e-6) + 1 : Math.ceil(k - 1e-6) - 1;
    let s = Math.pow(2, next);
    if ((dir < 0 && s < fit && scale > fit) || (dir > 0 && s > fit && scale < fit)) s = fit;
    zoomTo(s, cx, cy);
  }

  stage.addEventListener("pointerdown", function (e) {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    touched();
    const [sw, , left, top] = size();
    pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
    stage.setPointerCapture(e.pointerId);
    root.focus({preventScroll: true});
    e.preventDefault();
    if (pointers.size === 2) {            // second finger: pinch zoom around the midpoint
      const [a, b] = [...pointers.values()];
      drag = {mode: "pinch", dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, scale: scale};
      return;
    }
    const onDivider = e.target.closest && e.target.closest(".aec-divider");
    const modifier = e.shiftKey || e.altKey || e.ctrlKey || e.metaKey;
    if (!onDivider && (modifier || scale > fit * 1.0001)) {
      drag = {mode: "pan", x: e.clientX, y: e.clientY, tx: tx, ty: ty};
      root.classList.add("aec-panning");
    } else {
      drag = {mode: "divider"};
      if (!onDivider) setPos((e.clientX - left) / sw);
    }
  });
  stage.addEventListener("pointermove", function (e) {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, {x: e.clientX, y: e.clientY});
    if (!drag) return;
    const [sw, , left, top] = size();
    if (drag.mode === "pinch" && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      zoomTo(drag.scale * d / drag.dist, (a.x + b.x) / 2 - left, (a.y + b.y) / 2 - top);
    } else if (drag.mode === "pan") {
      tx = drag.tx + e.clientX - drag.x; ty = drag.ty + e.clientY - drag.y; render();
    } else if (drag.mode === "divider") {
      setPos((e.clientX - left) / sw);
    }
  });
  function release(e) {
    pointers.delete(e.pointerId);
    if (stage.hasPointerCapture && stage.hasPointerCapture(e.pointerId)) stage.releasePointerCapture(e.pointerId);
    if (pointers.size === 0) { drag = null; root.classList.remove("aec-panning"); }
    else if (drag && drag.mode === "pinch") drag = null;
  }
  stage.addEventListener("pointerup", release);
  stage.addEventListener("pointercancel", release);

  stage.addEventListener("wheel", function (e) {
    const [, , left, top] = size();
    const factor = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.002));
    // Zooming out at the smallest zoom scrolls the page instead of trapping the wheel.
    if (factor < 1 && scale <= minScale() + 1e-6) return;
    e.preventDefault(); touched();
    zoomTo(scale * factor, e.clientX - left, e.clientY - top);
  }, {passive: false});

  stage.addEventListener("dblclick", function (e) {
    const [, , left, top] = size();
    if (scale > fit * 1.0001) toFit();
    else zoomTo(fit < 1 ? 1 : fit * 2, e.clientX - left, e.clientY - top);
  });

  root.addEventListener("keydown", function (e) {
    if (e.target.tagName === "SELECT") return;
    const step = e.shiftKey ? 0.1 : 0.02;
    let handled = true;
    switch (e.key) {
      case "ArrowLeft": setPos(pos - step); break;
      case "ArrowRight": setPos(pos + step); break;
      case "Home": setPos(0); break;
      case "End": setPos(1); break;
      case "+": case "=": stepZoom(1); break;
      case "-": case "_": stepZoom(-1); break;
      case "0": toFit(); break;
      case "1": zoomTo(1); break;
      default: handled = false;
    }
    if (handled) { e.preventDefault(); touched(); }
  });

  root.querySelector(".aec-zoom-in").addEventListener("click", function () { stepZoom(1); });
  root.querySelector(".aec-zoom-out").addEventListener("click", function () { stepZoom(-1); });
  root.querySelector(".aec-fit").addEventListener("click", toFit);
  root.querySelector(".aec-one").addEventListener("click", function () { zoomTo(1); });
  root.querySelector(".aec-swap").addEventListener("click", function () { setImages(selRight.value, selLeft.value); });
  selLeft.addEventListener("change", function () { setImages(selLeft.value, selRight.value); });
  selRight.addEventListener("change", function () { setImages(selLeft.value, selRight.value); });

  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      const keep = atFit;
      fit = fitScale();
      if (keep) scale = fit;
      scale = clamp(scale, minScale(), MAX);
      render();
    }).observe(stage);
  }
  setImages(C.left, C.right);
  toFit();
})();
</script>
</body></html>
"""
