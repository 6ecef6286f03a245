"""End to end in a real browser: `streamlit run` on 127.0.0.1, driven by Debian's Chromium.

One server for the session's browser tests (tests/conftest.py). Compare: uploads a PNG through the page's file input, waits for
the comparison, drags the slider's divider and saves
tests/artifacts/compare.png; then WebP on the left and JPEG XL on the right at the same size,
flipped by key, SSIMULACRA 2 for both; the phone layout at 390x844
(tests/artifacts/compare_phone.png), and the same picture on the other pages. Rate-distortion and Inside the model: the same picture's curves
(with the Compare page's point) and latents, saved as tests/artifacts/rate_distortion.png
and inside_model.png. Skipped only where `chromium` is not on the PATH
(apt-get install -y chromium).
"""
import contextlib
import os
import re
from pathlib import Path
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu"]
WAIT_MS = 120_000  # bounds for a stuck page, not speed targets: CI machines may be busy


def bounded_waits(page) -> None:
    """Every wait of `page` and every `expect` (whose own default is 5 s) bounded by WAIT_MS."""
    from playwright.sync_api import expect
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer /_stcore/health within {timeout:.0f} s")


@contextlib.contextmanager
def streamlit_server(folder: Path, **env_extra: str):
    """`streamlit run` on a free local port with FOLDER as user weights; yields (url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AECORE_USER_WEIGHTS": str(folder), **env_extra}
    log = open(folder / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def tiny_weights_folder(folder: Path) -> Path:
    from aecore import weights
    from .conftest import TINY, make_tiny
    folder.mkdir(parents=True, exist_ok=True)
    for name in TINY:
        weights.save(make_tiny(name), name, folder, {"label": name})
    return folder


@pytest.fixture
def picture(tmp_path) -> Path:
    from skimage.data import coffee
    path = tmp_path / "coffee_cup.png"
    Image.fromarray(np.ascontiguousarray(coffee()[::2, ::2])).save(path)  # 300x200
    return path


class Browser:
    """A fresh Chromium page on the server that records script errors and requests to elsewhere."""

    def __init__(self, playwright, chromium: str, url: str):
        self.browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1440, "height": 2700})
        bounded_waits(self.page)
        self.errors, self.outside = [], []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        ours = (url, "data:", "blob:", "about:")
        self.page.on("request", lambda r: None if r.url.startswith(ours) else self.outside.append(r.url))

    def check_clean(self) -> None:
        assert not self.page.get_by_test_id("stException").count()
        assert not self.errors, self.errors  # the pages' scripts ran cleanly
        assert not self.outside, self.outside  # everything came from our server: works offline


def upload_on_compare(page, url: str, picture: Path) -> None:
    page.goto(url)
    page.locator("input[type=file]").first.wait_for(state="attached")
    page.locator("input[type=file]").first.set_input_files(str(picture))
    page.get_by_text(picture.name).first.wait_for()


# Records every link the sidebar shows, from the first paint on (Streamlit's own page list
# for a `pages/` folder would show the files there until the router's navigation replaced it).
_SIDEBAR_LINKS = r"""
window.__sidebarLinks = new Set();
new MutationObserver(() => {
  for (const a of document.querySelectorAll('[data-testid="stSidebar"] a')) {
    window.__sidebarLinks.add(a.innerText.trim().split("\n").pop());  // the title, after the icon's name
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
NAVIGATION = ["Compare", "Rate-distortion", "Fine-tune", "Inside the model", "Gallery"]


def sidebar_link(page, title: str):
    return page.get_by_test_id("stSidebar").get_by_role("link", name=title, exact=True)


def test_compare_page_in_chromium(chromium, server, picture):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        b = Browser(p, chromium, server)
        page = b.page
        try:
            # The server's first visitor: from the first paint the sidebar lists only the app's pages.
            page.add_init_script(_SIDEBAR_LINKS)
            upload_on_compare(page, server, picture)
            expect(sidebar_link(page, "Gallery")).to_be_visible()
            links = page.evaluate("[...window.__sidebarLinks]")
            assert links and set(links) <= set(NAVIGATION), links
            shown = page.get_by_test_id("stSidebar").get_by_role("link").all_inner_texts()
            assert [text.strip().split("\n")[-1] for text in shown] == NAVIGATION
            expect(page.get_by_text("PSNR").first).to_be_visible()
            expect(page.get_by_test_id("stTable")).to_contain_text("PSNR (dB)")
            slider = page.locator("#aec-slider")
            expect(slider).to_contain_text("300×200 px")  # the new picture's slider, not the sample's
            expect(slider).to_have_attribute("data-pos", "0.5000")

            handle = slider.locator(".aec-divider .aec-handle")
            box = handle.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x - 120, y, steps=8)
            page.mouse.up()
            pos = float(slider.get_attribute("data-pos"))
            assert 0.05 < pos < 0.45, pos

            fit = float(slider.get_attribute("data-scale"))
            slider.locator(".aec-zoom-in").click()
            assert float(slider.get_attribute("data-scale")) > fit
            slider.locator(".aec-fit").click()
            assert float(slider.get_attribute("data-scale")) == fit

            # Double-click zooms in where it points and leaves the divider where it was.
            stage = slider.locator(".aec-stage").bounding_box()
            before = slider.get_attribute("data-pos")
            page.mouse.dblclick(stage["x"] + stage["width"] * 0.8, stage["y"] + stage["height"] / 2)
            expect(slider).not_to_have_attribute("data-scale", f"{fit:.4f}")
            assert slider.get_attribute("data-pos") == before
            # Holding F (or the Flip button) shows the other image on each side, at the same zoom and place.
            zoomed = slider.get_attribute("data-scale")
            labels = slider.locator(".aec-label-left").inner_text(), slider.locator(".aec-label-right").inner_text()
            slider.focus()
            page.keyboard.down("f")
            expect(slider).to_have_attribute("data-flipped", "1")
            assert (slider.locator(".aec-label-left").inner_text(),
                    slider.locator(".aec-label-right").inner_text()) == labels[::-1]
            assert slider.get_attribute("data-scale") == zoomed and slider.get_attribute("data-pos") == before
            page.keyboard.up("f")
            expect(slider).to_have_attribute("data-flipped", "0")
            flip = slider.locator(".aec-flip").bounding_box()
            page.mouse.move(flip["x"] + flip["width"] / 2, flip["y"] + flip["height"] / 2)
            page.mouse.down()
            expect(slider).to_have_attribute("data-flipped", "1")
            page.mouse.up()
            expect(slider).to_have_attribute("data-flipped", "0")
            slider.locator(".aec-fit").click()
            # 3-up: the original beside both sides, each a third of the stage, one zoom for all.
            slider.locator(".aec-three").click()
            expect(slider).to_have_attribute("data-three", "1")
            panels = slider.locator(".aec-panel")
            assert [panels.nth(i).inner_text() for i in range(3)] == ["Original", *labels]
            width = slider.locator(".aec-stage").bounding_box()["width"]
            assert all(abs(panels.nth(i).bounding_box()["width"] - width / 3) < 2 for i in range(3))
            expect(slider.locator(".aec-divider")).to_be_hidden()
            slider.locator(".aec-zoom-in").click()
            sources = [panels.nth(i).locator("img").evaluate("i => [i.style.transform, i.src.length > 100]")
                       for i in range(3)]
            assert len({t for t, _ in sources}) == 1 and all(ok for _, ok in sources)
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "compare_three_up.png"), full_page=True)
            slider.locator(".aec-three").click()
            expect(slider).to_have_attribute("data-three", "0")
            # A new quality swaps the pictures in the slider on the page: its zoom and divider stay.
            view = slider.get_attribute("data-scale"), slider.get_attribute("data-pos")
            quality = page.get_by_role("slider").first  # the page's learned quality, above the picture
            quality.focus()
            page.keyboard.press("ArrowRight")
            expect(slider.locator(".aec-label-left")).not_to_have_text(labels[0])
            assert (slider.get_attribute("data-scale"), slider.get_attribute("data-pos")) == view
            slider.locator(".aec-fit").click()
            page.wait_for_timeout(300)  # let the page settle before the picture
            page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
            b.check_clean()

            two_codecs_flip_and_score(page, slider)
            phone_layout(page, slider)
            b.check_clean()
            # The same picture is waiting on the other pages (the sidebar's navigation, same session).
            page.set_viewport_size({"width": 1440, "height": 1700})
            page.wait_for_timeout(500)
            if page.get_by_test_id("stExpandSidebarButton").is_visible():  # folded at the phone's width
                page.get_by_test_id("stExpandSidebarButton").click()
            for title in ("Inside the model", "Rate-distortion"):
                sidebar_link(page, title).click()
                expect(page.get_by_role("heading", name=title)).to_be_visible()
                expect(page.get_by_text("uploaded on another page").first).to_contain_text(picture.name)
            b.check_clean()
        finally:
            b.browser.close()


def choose(page, label: str, option: str) -> None:
    """Picks `option` in the Streamlit selectbox labelled `label`."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def two_codecs_flip_and_score(page, slider) -> None:
    """WebP on the left, JPEG XL on the right at the same size, flipped by key, SSIMULACRA 2 for both."""
    from playwright.sync_api import expect

    choose(page, "Left side", "WebP")
    choose(page, "Right side", "JPEG XL")
    right = page.get_by_test_id("stRadio").nth(1)
    expect(right.get_by_role("radio", name="Same size as the other side")).to_be_checked()
    expect(slider.locator(".aec-label-left")).to_contain_text("WebP")
    expect(slider.locator(".aec-label-right")).to_contain_text("JPEG XL")
    slider.focus()
    page.keyboard.down("f")
    expect(slider.locator(".aec-label-left")).to_contain_text("JPEG XL")
    expect(slider.locator(".aec-label-right")).to_contain_text("WebP")
    page.keyboard.up("f")
    expect(slider.locator(".aec-label-left")).to_contain_text("WebP")

    table = page.get_by_test_id("stTable").filter(has_text="JPEG XL")  # not the table this one replaces
    expect(table.locator("thead")).to_contain_text("WebP")
    expect(page.get_by_test_id("stTable")).to_have_count(1)  # the page's run is over
    score = table.locator("tr", has_text="SSIMULACRA 2")
    expect(score).to_contain_text(re.compile(r"-?\d+\.\d.*-?\d+\.\d"))  # scored after the slider: both sides
    values = [float(v) for v in score.locator("td").all_inner_texts()]
    assert len(values) == 2 and all(-100 < v < 100 for v in values), values
    sizes = [int(v.replace(",", "")) for v in table.locator("tr", has_text="Size (bytes)").locator("td")
             .all_inner_texts()]
    assert sizes[1] <= sizes[0], sizes  # JPEG XL's file is no larger than WebP's: the same size


def phone_layout(page, slider) -> None:
    """At 390x844 (a phone) nothing is wider than the screen: the slider fills the content width,
    its toolbar wraps with every control in view, the controls stack, the table fits."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    frame = slider
    page.wait_for_function("root => root.offsetWidth < 390", arg=slider.element_handle())
    page.wait_for_timeout(300)  # the slider relays itself out at its narrower width
    width, scroll = page.evaluate("() => [innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= width, (scroll, width)
    content = page.get_by_test_id("stMainBlockContainer").evaluate(
        "e => { const s = getComputedStyle(e); return e.clientWidth - parseFloat(s.paddingLeft)"
        " - parseFloat(s.paddingRight); }")
    box = frame.bounding_box()
    assert abs(box["width"] - content) <= 2 and box["x"] >= 0 and box["x"] + box["width"] <= width, (box, content)

    parts = slider.evaluate("""root => {
        const rect = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
        const bar = root.querySelector('.aec-toolbar'), stage = root.querySelector('.aec-stage');
        return {bar: rect(bar), stage: rect(stage), scroll: [bar.scrollWidth, bar.clientWidth],
                controls: [...bar.querySelectorAll('button, select, .aec-size, .aec-zoom-level')]
                    .filter(e => getComputedStyle(e).display !== 'none').map(rect),
                labels: [...root.querySelectorAll('.aec-stage > .aec-label, .aec-hint')].map(rect)};
    }""")
    assert parts["scroll"][0] <= parts["scroll"][1], parts["scroll"]
    inside = lambda r, box: box[0] - 0.5 <= r[0] and r[2] <= box[2] + 0.5 and box[1] - 0.5 <= r[1] and r[3] <= box[3] + 0.5
    assert len(parts["controls"]) >= 10 and all(inside(r, parts["bar"]) for r in parts["controls"]), parts
    assert all(inside(r, parts["stage"]) for r in parts["labels"]), parts
    left, right = parts["labels"][:2]
    assert left[2] <= right[0], (left, right)  # the two labels side by side, not over each other

    selects = [page.get_by_test_id("stSelectbox").filter(has_text=t).first.bounding_box()
               for t in ("Left side", "Right side")]
    assert selects[1]["y"] >= selects[0]["y"] + selects[0]["height"], selects  # the two sides' controls stack
    assert all(s["width"] > 0.8 * content for s in selects), selects
    table = page.get_by_test_id("stTable")
    t = table.bounding_box()
    assert t["x"] >= 0 and t["x"] + t["width"] <= width, t
    assert table.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the numbers table scrolls sideways"
    hint = slider.locator(".aec-hint")
    expect(hint).to_contain_text("hold F to flip", use_inner_text=True)
    cdp = page.context.new_cdp_session(page)  # a touch screen (pointer: coarse): no wheel, no keys
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    expect(hint).to_contain_text("pinch to zoom", use_inner_text=True)
    expect(hint).not_to_contain_text("hold F to flip", use_inner_text=True)
    frame.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "compare_phone.png"))
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_slider_labels_wrap_rather_than_cut_on_a_narrow_slider(chromium):
    """The side labels end with the file size: a long label wraps, never cut, at a width above the
    phone layout's (which has rules of its own)."""
    from playwright.sync_api import sync_playwright
    from aecore.viewer import slider_html

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(2))
    left, right = "hyperprior: mean-scale hyperprior (default) q 4.5 · 14.1 KB", "JPEG XL q 90 · 13.9 KB"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 720, "height": 420})
            page.set_content(slider_html({left: a, right: b}, left=left, right=right, height=360))
            boxes = []
            for selector, text in ((".aec-label-left", left), (".aec-label-right", right)):
                label = page.locator(selector)
                assert label.inner_text() == text
                whole = label.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight")
                assert whole, (selector, label.evaluate("e => [e.scrollWidth, e.clientWidth]"))
                boxes.append(label.bounding_box())
            stage = page.locator(".aec-stage").bounding_box()
            assert boxes[0]["x"] + boxes[0]["width"] < boxes[1]["x"]  # side by side, not over each other
            assert all(stage["x"] <= b["x"] and b["x"] + b["width"] <= stage["x"] + stage["width"] for b in boxes)
            assert boxes[0]["height"] > boxes[1]["height"]  # the long one wrapped onto more lines
        finally:
            browser.close()


def test_rate_distortion_and_inside_pages_in_chromium(chromium, server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from skimage.data import coffee
    picture = tmp_path / "coffee_cup.png"  # small: the Rate-distortion page codes it about 60 times
    Image.fromarray(np.ascontiguousarray(coffee()[::4, ::4])).save(picture)  # 150x100

    with sync_playwright() as p:
        b = Browser(p, chromium, server)
        page = b.page
        try:
            upload_on_compare(page, server, picture)  # sets the operating point for this session
            slider = page.locator("#aec-slider")
            expect(slider).to_contain_text("150×100 px")  # this picture's result is in

            page.set_viewport_size({"width": 1440, "height": 1700})  # Streamlit scrolls inside: fit the page
            sidebar_link(page, "Rate-distortion").click()  # same session
            expect(page.get_by_role("heading", name="Rate-distortion")).to_be_visible()
            page.locator("input[type=file]").first.set_input_files(str(picture))
            page.get_by_text("coffee_cup.png").first.wait_for()
            expect(page.get_by_text("150×100 px ·").first).to_be_visible(timeout=120_000)  # the sweep
            chart = page.get_by_test_id("stPlotlyChart").first
            expect(chart.locator(".legendtext", has_text="Compare page's point")).to_have_count(1)
            # the default codec set: the shipped models and the classical codecs, not the
            # user's other weights (tiny-hyper is one choice away, not swept by default)
            expect(chart.locator(".legendtext", has_text=re.compile(r"^hyperprior"))).to_have_count(1)
            expect(chart.locator(".legendtext", has_text="tiny-hyper")).to_have_count(0)
            expect(page.get_by_test_id("stTable").first).to_contain_text("hyperprior")
            page.wait_for_timeout(500)  # let the chart's transitions finish
            page.screenshot(path=str(ARTIFACTS / "rate_distortion.png"), full_page=True)
            b.check_clean()

            page.set_viewport_size({"width": 1440, "height": 2900})
            sidebar_link(page, "Inside the model").click()
            expect(page.get_by_role("heading", name="Inside the model")).to_be_visible()
            # no upload here: the image uploaded on the other pages is this session's current image
            expect(page.get_by_text("uploaded on another page").first).to_be_visible()
            page.get_by_text("coffee_cup.png").first.wait_for()
            expect(page.get_by_text("Estimated from the model")).to_be_visible()
            expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "inside_model.png"), full_page=True)
            b.check_clean()
        finally:
            b.browser.close()
