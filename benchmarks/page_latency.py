"""The page rows of the latency table, measured in a real browser (Playwright on Chromium).

    python benchmarks/latency.py ... --page-runs 10    # runs these beside the command-line rows

A `streamlit run` of the app with the shipped weights only, driven by Debian's Chromium:
- app cold start to first result: from starting the server to the Compare page's slider for
  its default sample (the browser is open already; a fresh server each run);
- Compare, upload to first result: a Kodak photo (768x512) set on the file input to its slider;
- Compare, quality slider moved to new result shown: one step of the learned quality (keyboard,
  each step a quality not coded before) to the new slider;
- Compare, 12 MP upload: a Kodak photo scaled to 4000x3000 set on the file input, to the labelled
  preview result (coded from a copy) and to the full-size result that replaces it;
- Rate-distortion, "This image": a new Kodak photo uploaded to the first curve drawn, and to
  the whole sweep (every default codec) with the run over.
A result counts as shown when the slider on the page shows a new result with its pictures loaded
(its data-updates changed), or a chart is in a container of the current run (Streamlit marks the
last run's elements stale).
Each row gives p50 and p95 (nearest rank) and every sample.
"""
from __future__ import annotations

import math
from pathlib import Path
import shutil
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.test_browser import CHROMIUM_ARGS, streamlit_server  # noqa: E402  (how the browser tests serve the app)
STUCK_MS = 600_000  # a bound for a stuck page, not a target
# The Compare page's slider stays on the page (a component in a shadow root); each result it shows
# bumps its data-updates. SLIDER_SHOWN: a result is shown; NEW_RESULT(old): another one is, with
# its pictures loaded, and the page notes the time (Date.now()) in window.__aecShownAt.
FIND_SLIDER = ("const slider = () => { for (const e of document.querySelectorAll('*')) { if (e.shadowRoot) { "
               "const r = e.shadowRoot.querySelector('#aec-slider'); if (r) return r; } } return null; };")
SLIDER_SHOWN = "() => { " + FIND_SLIDER + " const r = slider(); return r ? r.dataset.updates || null : null; }"
NEW_RESULT = ("old => { " + FIND_SLIDER + " const r = slider(); if (!r || !r.dataset.updates || r.dataset.updates === old) "
              "return false; if (![...r.querySelectorAll('.aec-img')].every(i => !i.getAttribute('src') || i.complete)) "
              "return false; window.__aecShownAt = window.__aecShownAt || Date.now(); return true; }")
FIRST_CURVE = ("() => [...document.querySelectorAll('.js-plotly-plot')]"
               ".some(p => !p.closest('[data-stale=\"true\"]'))")
SWEEP_DONE = ("() => !document.querySelector('[data-testid=\"stProgress\"]') && "
              "!document.querySelector('[data-stale=\"true\"]') && "
              "[...document.querySelectorAll('.js-plotly-plot')].length > 0 && "
              "document.body.innerText.includes('BD-rate against JPEG')")
# The Compare page's run is over: its last part (the heatmaps) shown, nothing stale or spinning.
COMPARE_DONE = ("() => !document.querySelector('[data-testid=\"stSpinner\"]') && "
                "!document.querySelector('[data-stale=\"true\"]') && "
                "document.body.innerText.includes('Where the errors are')")
RUN_STARTED = ("name => [...document.querySelectorAll('[data-testid=\"stProgress\"]')]"
               ".some(b => b.innerText.includes(name))")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(samples: list[float], what: str) -> dict:
    return {"what": what, "p50_s": round(percentile(samples, 50), 3), "p95_s": round(percentile(samples, 95), 3),
            "runs": len(samples), "samples_s": [round(s, 3) for s in samples]}


def _new_page(browser):
    page = browser.new_page(viewport={"width": 1440, "height": 2000})
    page.set_default_timeout(STUCK_MS)
    return page


def _timed_new_slider(page, act) -> float:
    """Seconds from `act()` to the slider showing a new result, its pictures loaded. The page notes
    the time itself, checking every 20 ms: returning the slider's 2 MB of pictures to Python, or
    comparing them on every animation frame, kept a core busy and slowed the server beside it."""
    old = page.wait_for_function(SLIDER_SHOWN).json_value()
    page.evaluate("window.__aecShownAt = null")
    t0 = time.time()
    act()
    page.wait_for_function(NEW_RESULT, arg=old, polling=20)
    return page.evaluate("window.__aecShownAt") / 1000 - t0


BACKGROUND_NOTE = "is being coded in the background"  # the preview's label while the full image is coded
FULL_SHOWN = ("old => { " + FIND_SLIDER + " const r = slider(); return !!r && r.dataset.updates !== old && "
              "!document.body.innerText.includes('" + BACKGROUND_NOTE + "'); }")


def _timed_large_upload(page, upload, photo: Path) -> tuple[float, float]:
    """Seconds from setting a large photo on the file input to its labelled preview result, and to
    the full-size result that replaces it."""
    old = page.wait_for_function(SLIDER_SHOWN).json_value()
    page.evaluate("window.__aecShownAt = null")
    t0 = time.time()
    upload.set_input_files(str(photo))
    page.wait_for_function(NEW_RESULT, arg=old, polling=20)
    preview = page.evaluate("window.__aecShownAt") / 1000 - t0
    page.get_by_text(BACKGROUND_NOTE).wait_for()  # it was the preview, labelled as such
    shown = page.wait_for_function(SLIDER_SHOWN).json_value()
    page.wait_for_function(FULL_SHOWN, arg=shown, polling=50)
    return preview, time.time() - t0


def measure(kodak: Path, runs: int = 10, cold_runs: int = 10, rd_runs: int = 10, progress=print,
            big_runs: int = 0) -> dict:
    """The page rows: {row name: summary}. Needs Chromium on the PATH and Kodak's PNGs in `kodak`;
    `big_runs` 12 MP uploads (0 leaves the row out)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("the page rows need Debian's chromium on the PATH (apt-get install -y chromium)")
    photos = sorted(p for p in kodak.glob("kodim*.png") if p.name != "kodim05.png")
    if len(photos) < runs + rd_runs:
        raise RuntimeError(f"{kodak}: {runs + rd_runs} Kodak photos besides kodim05.png are needed")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="aecore-page-latency-") as empty, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            cold = []
            for i in range(cold_runs):
                page = _new_page(browser)
                started = time.perf_counter()
                with streamlit_server(Path(empty)) as (url, _):
                    page.goto(url)
                    page.wait_for_function(SLIDER_SHOWN)
                    cold.append(time.perf_counter() - started)
                page.close()
                progress(f"cold start {i + 1}/{cold_runs}: {cold[-1]:.1f} s")
            if cold:
                rows["app cold start to first result"] = summary(
                    cold, "streamlit run started to the Compare page's slider for its default sample")
            with streamlit_server(Path(empty)) as (url, _):
                page = _new_page(browser)
                page.goto(url)
                page.wait_for_function(SLIDER_SHOWN)
                upload = page.locator("input[type=file]").first
                warm = _timed_new_slider(page, lambda: upload.set_input_files(str(kodak / "kodim05.png")))
                progress(f"first upload (kodim05, warming up): {warm:.1f} s")
                thumb = page.get_by_role("slider").first
                moves = []
                for i in range(runs):
                    thumb.focus()
                    moves.append(_timed_new_slider(page, lambda: page.keyboard.press("ArrowRight")))
                    progress(f"quality step {i + 1}/{runs}: {moves[-1]:.2f} s")
                rows["Compare, quality slider moved to new result shown"] = summary(
                    moves, "kodim05 (768x512), learned quality +0.1 by keyboard to the new slider")
                uploads = []
                for i, photo in enumerate(photos[:runs]):
                    uploads.append(_timed_new_slider(page, lambda: upload.set_input_files(str(photo))))
                    progress(f"upload {i + 1}/{runs} ({photo.name}): {uploads[-1]:.2f} s")
                rows["Compare, upload to first result"] = summary(
                    uploads, "a new Kodak photo (0.39 MP) set on the file input to its slider")
                previews, fulls = [], []
                for i, photo in enumerate(photos[-big_runs:] if big_runs else []):
                    from PIL import Image
                    big = Path(empty) / f"big_{photo.stem}.png"
                    Image.open(photo).convert("RGB").resize((4000, 3000), Image.LANCZOS).save(big)
                    page.wait_for_function(COMPARE_DONE, polling=100)  # the last result's scoring is over
                    preview, whole = _timed_large_upload(page, upload, big)
                    big.unlink()
                    previews.append(preview)
                    fulls.append(whole)
                    progress(f"12 MP upload {i + 1}/{big_runs} ({photo.name}): preview {preview:.2f} s, "
                             f"full {whole:.1f} s")
                if previews:
                    rows["Compare, 12 MP upload, labelled preview shown"] = summary(
                        previews, "a Kodak photo scaled to 4000x3000 set on the file input to its preview's slider")
                    rows["Compare, 12 MP upload, full-size result shown"] = summary(
                        fulls, "the same, to the full-size result replacing the preview")

                first, whole = [], []
                # The last upload's scoring (SSIMULACRA 2, heatmaps) must not run beside the first sweep.
                page.wait_for_function(COMPARE_DONE, polling=100)
                try:
                    rd_sweeps(page, url, photos[runs:runs + rd_runs], first, whole, progress)
                except Exception as e:  # noqa: BLE001  (the rows measured so far are kept)
                    rows["Rate-distortion error"] = {"what": f"{type(e).__name__}: {str(e)[:300]}"}
                if first:
                    rows["Rate-distortion, This image, first curve"] = summary(
                        first, "a new Kodak photo uploaded to its first curve (default codecs)")
                    rows["Rate-distortion, This image, whole sweep"] = summary(
                        whole, "the same, to every default codec's curve with the run over")
        finally:
            browser.close()
    return rows


def rd_sweeps(page, url: str, photos: list[Path], first: list, whole: list, progress) -> None:
    """Each photo uploaded on a fresh Rate-distortion page: seconds to the first curve and to the end."""
    for i, photo in enumerate(photos):
        page.goto(url + "/rate-distortion")  # a fresh page: no element of an earlier run
        page.locator("input[type=file]").first.wait_for(state="attached")
        rd_upload = page.locator("input[type=file]").first
        t0 = time.perf_counter()
        rd_upload.set_input_files(str(photo))
        page.wait_for_function(RUN_STARTED, arg=photo.name, polling=50)  # this photo's sweep is running
        page.wait_for_function(FIRST_CURVE, polling=50)
        first.append(time.perf_counter() - t0)
        page.wait_for_function(SWEEP_DONE, polling=50)
        whole.append(time.perf_counter() - t0)
        progress(f"rate-distortion {i + 1}/{len(photos)} ({photo.name}): first curve {first[-1]:.1f} s, "
                 f"whole sweep {whole[-1]:.1f} s")
