"""Every picture the README shows, made from the shipped weights: run this after the weights change.

    python benchmarks/figures.py [--out docs] [--chromium /usr/bin/chromium]

Writes OUT/figure.png (the report's slide for the Astronaut sample at 25 KB, from
`aecore.report`, the same as `python -m aecore report --samples Astronaut --budget 25KB`),
then starts the app (`streamlit run` on a free local port, only the shipped weights
visible) and saves screenshots taken in Chromium: OUT/compare.png (the Compare page
as it opens), OUT/compare_codecs.png (WebP at 12 KB on the left, JPEG XL at the same
size on the right, zoomed in), OUT/compare_phone.png (the same at 390x844, a phone) and
OUT/gallery.png (the Gallery's presentation layout at 25 KB). `--only` makes some of them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE, BUDGET = "Astronaut", "25KB"
TWO_CODECS, TWO_CODECS_KB = ("WebP", "JPEG XL"), 12  # a side by its target size, the other at the same size
PICTURES = ("figure", "compare", "compare_codecs", "compare_phone", "gallery")


def slide(out: Path) -> None:
    from aecore import report
    from aecore.io import sample_images
    from aecore.weights import DEFAULT_MODEL

    target = report.Target.parse(budget=BUDGET)
    command = report.command_line([f"sample:{SAMPLE}"], target, [DEFAULT_MODEL, "jpeg"])
    built = report.build({SAMPLE: sample_images()[SAMPLE]}, DEFAULT_MODEL, target, command=command, with_rd=False)
    (out / "figure.png").write_bytes(report.figure_png(built.items[0], built.provenance))
    print(f"{out / 'figure.png'}: {built.items[0].verdict}")


def served(folder: Path):
    """Starts `streamlit run` with an empty user-weights folder; returns (url, process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AECORE_USER_WEIGHTS": str(folder)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
        stdout=open(folder / "streamlit.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return url, proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode}") from None
            time.sleep(0.2)
    proc.terminate()
    raise TimeoutError("the app did not start within a minute")


def choose(page, label: str, option: str) -> None:
    """Picks `option` in the Streamlit selectbox labelled `label`."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def show_from(element, above: int) -> None:
    """Scrolls the page (Streamlit scrolls an inner container) so `element` starts `above` px from the top."""
    element.evaluate("""(e, above) => {
        e.scrollIntoView({block: 'start'});
        for (let p = e.parentElement; p; p = p.parentElement) {
            if (p.scrollHeight > p.clientHeight && getComputedStyle(p).overflowY !== 'visible') {
                p.scrollBy(0, -above); return;
            }
        }
        window.scrollBy(0, -above);
    }""", above)


def two_codecs(page, out: Path, wanted: set[str]) -> None:
    """WebP by a target size on the left, JPEG XL at the same size on the right, zoomed in on the
    slider; then the same page at a phone's 390x844."""
    from playwright.sync_api import expect

    left, right = TWO_CODECS
    slider = page.locator("#aec-slider")  # the Compare page's slider stays on the page (no iframe)
    choose(page, "Left side", left)
    expect(slider.locator(".aec-label-left")).to_contain_text(f"{left} q")
    page.get_by_test_id("stRadio").first.get_by_text("Target size").click()
    kb = page.get_by_test_id("stNumberInput").first.locator("input")
    kb.fill(str(TWO_CODECS_KB))
    kb.press("Enter")
    expect(page.get_by_text(re.compile(rf"^At {TWO_CODECS_KB - 1}\.\d KB"))).to_be_visible()  # just under the budget
    choose(page, "Right side", right)
    expect(slider.locator(".aec-label-right")).to_contain_text(right)
    table = page.get_by_test_id("stTable").filter(has_text=right)  # this comparison's, not the one it replaces
    expect(table.locator("thead")).to_contain_text(left)
    expect(table.locator("tr", has_text="SSIMULACRA 2")).to_contain_text(re.compile(r"\d\.\d.*\d\.\d"))
    expect(page.get_by_test_id("stSpinner")).to_have_count(0)  # the page has finished its run
    if "compare_codecs" in wanted:
        slider.locator(".aec-zoom-in").click()
        show_from(page.get_by_role("heading", name=re.compile("^At ")), 24)  # the verdict, then the slider
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "compare_codecs.png"))
        print(out / "compare_codecs.png")
    if "compare_phone" in wanted:
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(1000)
        slider.locator(".aec-fit").click()
        show_from(page.get_by_role("heading", name=re.compile("^At ")), 12)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "compare_phone.png"))
        print(out / "compare_phone.png")


def screenshots(out: Path, chromium: str, wanted: set[str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url, proc = served(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True,
                                            args=["--disable-gpu", "--no-first-run", "--disable-sync"])
                page = browser.new_page(viewport={"width": 1440, "height": 1500})
                page.set_default_timeout(180_000)
                expect.set_options(timeout=180_000)
                page.goto(url)
                slider = page.locator("#aec-slider")
                expect(slider).to_be_visible()
                expect(page.get_by_test_id("stTable").first).to_contain_text("PSNR")
                page.wait_for_timeout(1000)  # let the layout settle
                if "compare" in wanted:
                    page.screenshot(path=str(out / "compare.png"))
                    print(out / "compare.png")
                if wanted & {"compare_codecs", "compare_phone"}:
                    two_codecs(page, out, wanted)

                if "gallery" in wanted:
                    page.set_viewport_size({"width": 1600, "height": 1250})
                    page.goto(url + "/gallery")
                    expect(page.locator(".gallery-verdict")).to_be_visible()
                    expect(page.frame_locator("iframe[title='st.iframe']").locator("#aec-slider")).to_be_visible()
                    page.wait_for_timeout(1000)
                    page.screenshot(path=str(out / "gallery.png"))
                    print(out / "gallery.png")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the pictures (default: docs)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium to drive (default: chromium on the PATH)")
    parser.add_argument("--only", help=f"comma-separated pictures to make (default all: {','.join(PICTURES)})")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else set(PICTURES)
    if wanted - set(PICTURES):
        parser.error(f"unknown pictures {', '.join(sorted(wanted - set(PICTURES)))}; known: {', '.join(PICTURES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "figure" in wanted:
        slide(out)
    if wanted - {"figure"}:
        screenshots(out, args.chromium, wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
