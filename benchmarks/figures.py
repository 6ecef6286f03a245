"""Every picture the README shows, made from the shipped weights: run this after the weights change.

    python benchmarks/figures.py [--out docs] [--chromium /usr/bin/chromium]

Writes OUT/figure.png (the report's slide for the Astronaut sample at 25 KB, from
`aecore.report`, the same as `python -m aecore report --samples Astronaut --budget 25KB`),
then starts the app (`streamlit run` on a free local port, only the shipped weights
visible) and saves two screenshots taken in Chromium: OUT/compare.png (the Compare page
as it opens) and OUT/gallery.png (the Gallery's presentation layout at 25 KB).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
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


def screenshots(out: Path, chromium: str) -> None:
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
                slider = page.frame_locator("iframe[title='st.iframe']").locator("#aec-slider")
                expect(slider).to_be_visible()
                expect(page.get_by_test_id("stTable").first).to_contain_text("PSNR")
                page.wait_for_timeout(1000)  # let the layout settle
                page.screenshot(path=str(out / "compare.png"))
                print(out / "compare.png")

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
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slide(out)
    screenshots(out, args.chromium)
    return 0


if __name__ == "__main__":
    sys.exit(main())
