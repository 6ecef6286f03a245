"""The Fine-tune page end to end in a real browser: a real background job, watched live.

The browser tests' `streamlit run` (tests/conftest.py: the tiny weights, its own jobs folder), driven by
Debian's Chromium: picks the tiny base model and the built-in sample photos, starts a
20-step job, watches the self-refreshing progress, waits for the before/after result and
saves tests/artifacts/fine_tune.png. Skipped only where `chromium` is not on the PATH
(apt-get install -y chromium).
"""
import time

from aecore import jobs

from .test_browser import ARTIFACTS, Browser

FINISH_TIMEOUT = 600  # seconds: a bound on a stuck job, not a speed target (a busy 2-core machine took over 120)


def test_fine_tune_page_in_chromium(chromium, browser_app, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    url, jobs_folder = browser_app
    monkeypatch.setenv("AECORE_JOBS_DIR", str(jobs_folder))  # the server's jobs, and ours to stop
    try:
        with sync_playwright() as p:
            b = Browser(p, chromium, url)  # records script errors and requests to elsewhere
            page = b.page
            try:
                page.goto(url)  # the app's front door, then its navigation, as a visitor goes
                sidebar = page.get_by_test_id("stSidebar")
                sidebar.get_by_role("link", name="Fine-tune", exact=True).click(timeout=60_000)
                expect(page.get_by_role("heading", name="Fine-tune", exact=True)).to_be_visible()

                base = page.get_by_test_id("stSelectbox").filter(has_text="Base model")
                base.click()
                page.get_by_role("option", name="tiny-hyper", exact=True).click()
                expect(page.get_by_role("combobox", name="Base model")).to_have_value("tiny-hyper")
                page.get_by_text("Use the 5 sample photos").click()
                steps = page.get_by_role("spinbutton", name="Training steps")
                steps.fill("20")
                steps.press("Enter")
                estimate = page.get_by_test_id("stAlert").filter(has_text="on this machine")
                expect(estimate).to_contain_text("20 steps")
                name_box = page.get_by_role("textbox", name="Name of the new weights")
                expect(name_box).to_have_attribute("placeholder", "tiny-hyper-ft")  # empty: the suggestion
                expect(name_box).to_have_value("")
                name = "tiny-hyper-ft"

                started = time.monotonic()
                page.get_by_role("button", name="Start fine-tuning").click()
                seen, result = [], page.get_by_text("BD-rate, new vs base")
                while not result.count():  # the live part refreshes itself: no reloads, no clicks
                    assert time.monotonic() - started < FINISH_TIMEOUT, f"not finished; progress seen: {seen}"
                    bar = page.get_by_test_id("stProgress")
                    if bar.count():
                        try:
                            seen.append(bar.first.inner_text(timeout=1000))
                        except Exception:  # noqa: BLE001  (replaced while read: read it on the next round)
                            pass
                    page.wait_for_timeout(300)
                took = time.monotonic() - started
                print(f"fine-tune of 20 steps: finished on the page {took:.1f} s after Start; "
                      f"progress seen: {list(dict.fromkeys(seen))}")
                assert seen, "the progress bar never showed"
                expect(page.get_by_text("is in the model picker of every page")).to_be_visible()
                expect(page.get_by_test_id("stTable").last).to_contain_text("Same PSNR")
                expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)  # training curves, before/after
                expect(page.get_by_role("button", name="Resume")).to_be_disabled()

                page.wait_for_timeout(800)  # let the charts settle before the picture
                page.screenshot(path=str(ARTIFACTS / "fine_tune.png"), full_page=True)
                page.get_by_role("combobox", name="Model", exact=True).click()  # the sidebar's model picker
                expect(page.get_by_role("option", name=f"{name} (fine-tuned from tiny-hyper)")).to_be_visible()
                page.keyboard.press("Escape")
                b.check_clean()  # no exception, no script error, nothing fetched from elsewhere
            finally:
                b.browser.close()
    finally:
        for job in jobs.list_jobs():  # a test that failed midway leaves no worker behind
            if job.state in jobs.ACTIVE:
                jobs.cancel(job, wait=15)
