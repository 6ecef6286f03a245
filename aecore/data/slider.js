// The before/after slider. `aecSlider(root)` wires the markup of slider.html under `root` and
// returns {update(config)}: the self-contained page calls it once; the app's live component on
// every new result, so the zoom, place, divider and view survive a quality step.
var aecSliderUpdates = 0;    // results shown on this page, for `data-updates` (browser tests, benchmarks)
function aecSlider(root) {
  "use strict";
  let C = {images: {}, names: [], maxZoom: 16, original: null};
  let W = 0, H = 0, MAX = 16;
  let picked = false;         // the user chose images in the selects since the last update
  const stage = root.querySelector(".aec-stage");
  const layerLeft = root.querySelector(".aec-layer-left");
  const imgLeft = root.querySelector("#aec-img-left");
  const imgRight = root.querySelector("#aec-img-right");
  const divider = root.querySelector(".aec-divider");
  const selLeft = root.querySelector("#aec-left");
  const selRight = root.querySelector("#aec-right");
  const labelLeft = root.querySelector(".aec-label-left");
  const labelRight = root.querySelector(".aec-label-right");
  const zoomLevel = root.querySelector(".aec-zoom-level");
  const sizeText = root.querySelector(".aec-size");

  let pos = 0.5;              // divider, as a fraction of the stage width
  let scale = 1, tx = 0, ty = 0, fit = 1, atFit = true;
  let drag = null;            // {mode: "divider"|"pan"|"pinch", ...}
  let three = false;          // the original, left and right side by side, one zoom and place for all
  let flipped = false;        // held: each side of the divider shows the other image, nothing else moves
  // A double-click zooms; its two clicks do not move the divider. A press is the first of a
  // possible double-click unless the last one was under 600 ms before and a few pixels away.
  let lastDown = {t: -1e9, x: 0, y: 0}, posBeforeClicks = 0.5;
  const pointers = new Map(); // pointerId -> {x, y}, for pinch zoom

  const trio = [...root.querySelectorAll(".aec-trio-img")];
  const trioLabels = [...root.querySelectorAll(".aec-trio-label")];
  const threeButton = root.querySelector(".aec-three");

  function size() { const r = stage.getBoundingClientRect(); return [r.width || 1, r.height || 1, r.left, r.top]; }
  function viewW() { return three ? size()[0] / 3 : size()[0]; }  // the width one picture is laid out in
  function local(x) { return three ? x % viewW() : x; }             // a stage x inside its panel
  function fitScale() {
    const sw = viewW(), sh = size()[1];
    const f = Math.min(sw / W, sh / H);
    return f >= 1 ? Math.min(Math.floor(f), 8) : f;  // enlarge small images by whole factors only
  }
  function minScale() { return Math.min(fit, 1); }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function percent(s) { return (s * 100 >= 99.5 ? Math.round(s * 100) : (s * 100).toFixed(s < 0.1 ? 1 : 0)) + "%"; }

  function show(img, name) {  // an unchanged picture is not decoded again
    const uri = C.images[name];
    if (img.getAttribute("src") !== uri) img.src = uri;
  }
  function setImages(left, right) {
    setFlip(false);
    show(imgLeft, left); show(imgRight, right);
    labelLeft.textContent = left; labelRight.textContent = right;
    selLeft.value = left; selRight.value = right;
    if (C.original) {
      [C.original, left, right].forEach(function (name, i) { show(trio[i], name); trioLabels[i].textContent = name; });
    }
  }
  function options(select) {
    select.replaceChildren(...C.names.map(function (name) {
      const o = document.createElement("option"); o.value = name; o.textContent = name; return o;
    }));
  }
  function setThree(on) {
    three = on;
    root.classList.toggle("aec-three-up", on);
    root.dataset.three = on ? "1" : "0";
    threeButton.setAttribute("aria-pressed", on ? "true" : "false");
    const keep = atFit;
    fit = fitScale();
    scale = keep ? fit : clamp(scale, minScale(), MAX);
    render();
  }

  function render() {
    const [fw, sh] = size(), sw = viewW();
    const iw = W * scale, ih = H * scale;
    tx = iw <= sw ? (sw - iw) / 2 : clamp(tx, sw - iw, 0);
    ty = ih <= sh ? (sh - ih) / 2 : clamp(ty, sh - ih, 0);
    if (scale >= 1) { tx = Math.round(tx); ty = Math.round(ty); }  // whole-pixel offsets keep pixels crisp
    const t = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
    for (const img of [imgLeft, imgRight, ...trio]) img.style.transform = t;
    const x = clamp(pos, 0, 1) * fw;
    layerLeft.style.clipPath = flipped ? "inset(0 0 0 " + x + "px)" : "inset(0 " + (fw - x) + "px 0 0)";
    divider.style.left = x + "px";
    divider.setAttribute("aria-valuenow", String(Math.round(pos * 100)));
    root.classList.toggle("aec-pixelated", scale > 1.0001);
    root.classList.toggle("aec-zoomed", scale > fit * 1.0001);
    zoomLevel.textContent = atFit ? "Fit " + percent(scale) : percent(scale);
    root.dataset.pos = pos.toFixed(4);
    root.dataset.scale = scale.toFixed(4);
  }

  function zoomTo(s, cx, cy) {
    const sw = viewW(), sh = size()[1];
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
  function setFlip(on) {
    if (on === flipped) return;
    flipped = on;
    const a = labelLeft.textContent; labelLeft.textContent = labelRight.textContent; labelRight.textContent = a;
    root.dataset.flipped = on ? "1" : "0";
    render();
  }

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
    if (e.timeStamp - lastDown.t > 600 || Math.hypot(e.clientX - lastDown.x, e.clientY - lastDown.y) > 8) {
      posBeforeClicks = pos;  // the first click of a possible double-click
    }
    lastDown = {t: e.timeStamp, x: e.clientX, y: e.clientY};
    const onDivider = e.target.closest && e.target.closest(".aec-divider");
    const modifier = e.shiftKey || e.altKey || e.ctrlKey || e.metaKey;
    if (!onDivider && (modifier || scale > fit * 1.0001 || three)) {  // 3-up has no divider: it pans
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
      zoomTo(drag.scale * d / drag.dist, local((a.x + b.x) / 2 - left), (a.y + b.y) / 2 - top);
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
    zoomTo(scale * factor, local(e.clientX - left), e.clientY - top);
  }, {passive: false});

  stage.addEventListener("dblclick", function (e) {
    pos = posBeforeClicks;  // undo the divider jumps of the two clicks
    const [, , left, top] = size();
    if (scale > fit * 1.0001) toFit();
    else zoomTo(fit < 1 ? 1 : fit * 2, local(e.clientX - left), e.clientY - top);
  });

  root.addEventListener("keydown", function (e) {
    if (e.target.tagName === "SELECT") return;
    if (e.key === "f" || e.key === "F") { e.preventDefault(); touched(); setFlip(true); return; }
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
      case "3": if (C.original) setThree(!three); break;
      default: handled = false;
    }
    if (handled) { e.preventDefault(); touched(); }
  });

  root.addEventListener("keyup", function (e) { if (e.key === "f" || e.key === "F") setFlip(false); });
  window.addEventListener("blur", function () { setFlip(false); });
  threeButton.addEventListener("click", function () { setThree(!three); });
  const flipButton = root.querySelector(".aec-flip");
  flipButton.addEventListener("pointerdown", function (e) {
    e.preventDefault(); touched(); flipButton.setPointerCapture(e.pointerId); setFlip(true);
  });
  for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) {
    flipButton.addEventListener(ev, function () { setFlip(false); });
  }
  root.querySelector(".aec-zoom-in").addEventListener("click", function () { stepZoom(1); });
  root.querySelector(".aec-zoom-out").addEventListener("click", function () { stepZoom(-1); });
  root.querySelector(".aec-fit").addEventListener("click", toFit);
  root.querySelector(".aec-one").addEventListener("click", function () { zoomTo(1); });
  root.querySelector(".aec-swap").addEventListener("click", function () {
    picked = true; setImages(selRight.value, selLeft.value);
  });
  selLeft.addEventListener("change", function () { picked = true; setImages(selLeft.value, selRight.value); });
  selRight.addEventListener("change", function () { picked = true; setImages(selLeft.value, selRight.value); });

  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      const keep = atFit;
      fit = fitScale();
      if (keep) scale = fit;
      scale = clamp(scale, minScale(), MAX);
      render();
    }).observe(stage);
  }

  // A new result: the images and names change; the view stays unless the picture's size does.
  // Picks made in the selects are kept by their place in the list while it has as many images.
  function update(next) {
    const before = C, resized = next.width !== W || next.height !== H;
    let left = next.left, right = next.right;
    if (picked && before.names.length === next.names.length) {
      left = next.names[before.names.indexOf(selLeft.value)] || left;
      right = next.names[before.names.indexOf(selRight.value)] || right;
    } else {
      picked = false;
    }
    C = next; W = C.width; H = C.height; MAX = C.maxZoom;
    if (C.frame) root.style.height = C.frame + "px";
    sizeText.textContent = W + "\u00d7" + H + " px";
    threeButton.style.display = C.original ? "" : "none";
    if (three && !C.original) setThree(false);
    options(selLeft); options(selRight);
    if (resized) {
      for (const img of [imgLeft, imgRight, ...trio]) {
        img.width = W; img.height = H; img.style.width = W + "px"; img.style.height = H + "px";
      }
    }
    setImages(left, right);
    if (resized) toFit(); else render();
    root.dataset.updates = String(++aecSliderUpdates);
  }
  return {update: update};
}
