"""End to end in a real browser: `streamlit run` on 127.0.0.1, driven by Debian's Chromium.

Uploads a PNG through the page's file input, waits for the comparison, drags the slider's
divider inside its iframe and saves a screenshot to tests/artifacts/compare.png.
Skipped only where `chromium` is not on the PATH (apt-get install -y chromium).
"""
import os
from pathlib import Path
import shutil
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
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


def test_compare_page_in_chromium(user_weights, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser test needs it")
    from playwright.sync_api import expect, sync_playwright

    from skimage.data import coffee
    picture = tmp_path / "coffee_cup.png"
    Image.fromarray(np.ascontiguousarray(coffee()[::2, ::2])).save(picture)  # 300x200
    ARTIFACTS.mkdir(exist_ok=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AECORE_USER_WEIGHTS": str(user_weights)}
    log = open(tmp_path / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 2700})
                page.set_default_timeout(45_000)
                errors, outside = [], []
                page.on("pageerror", lambda e: errors.append(str(e)))
                ours = (url, "data:", "blob:", "about:")
                page.on("request", lambda r: None if r.url.startswith(ours) else outside.append(r.url))
                page.goto(url)
                page.locator("input[type=file]").first.wait_for(state="attached")
                page.locator("input[type=file]").first.set_input_files(str(picture))

                page.get_by_text("coffee_cup.png").first.wait_for()
                expect(page.get_by_text("PSNR").first).to_be_visible()
                expect(page.get_by_test_id("stTable")).to_contain_text("PSNR (dB)")
                slider = page.frame_locator("iframe[title='st.iframe']").locator("#aec-slider")
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
                page.wait_for_timeout(300)  # let the page settle before the picture
                page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
                assert not page.get_by_test_id("stException").count()
                assert not errors, errors  # the slider's script ran cleanly
                assert not outside, outside  # everything came from our server: works offline
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
