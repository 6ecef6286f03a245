"""An exported HTML report in Debian's Chromium with the network cut off: it must open whole.

The report is written to a file and opened from it, as a colleague would open an e-mailed
copy; every request that is not the file itself or inline data is aborted and recorded.
The slider (inside its iframe) must answer the keyboard and its buttons, and Plotly's
inline script must draw the chart. Then the Gallery in the running app: the arrow keys step
through the pictures with the sidebar collapsed. Skipped only where `chromium` is not installed.
"""
import numpy as np

from aecore import report

from .test_browser import ARTIFACTS, Browser


def test_the_report_opens_offline_with_a_working_slider_and_chart(chromium, user_weights, photo, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    from skimage.data import coffee

    images = {"astronaut crop": photo, "coffee crop": np.ascontiguousarray(coffee()[40:136, 100:228])}
    built = report.build(images, "tiny-hyper", report.Target(budget=1500), command="cmd")
    page_file = next(p for p in report.write(built, tmp_path / "out") if p.name == "report.html")
    url = page_file.as_uri()
    with sync_playwright() as p:
        b = Browser(p, chromium, url)  # records script errors and any request that is not the file
        page, blocked = b.page, []
        try:
            def gate(route):
                if route.request.url == url:
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", gate)
            page.goto(url)
            expect(page.locator("h2", has_text="How this report was made")).to_be_visible()
            expect(page.locator("table.made")).to_contain_text(built.provenance["weights_sha256"])
            expect(page.locator("section.item")).to_have_count(2)
            for img in page.locator("img").all():  # every picture decoded from its inline data
                assert img.evaluate("i => i.complete && i.naturalWidth > 0"), img.get_attribute("alt")

            slider = page.frame_locator("#image-0 iframe.slider").locator("#aec-slider")
            expect(slider).to_have_attribute("data-pos", "0.5000")
            slider.focus()
            slider.press("ArrowRight")
            expect(slider).to_have_attribute("data-pos", "0.5200")
            fit = float(slider.get_attribute("data-scale"))
            slider.locator(".aec-zoom-in").click()
            assert float(slider.get_attribute("data-scale")) > fit
            expect(slider.locator(".aec-label-left")).to_contain_text("tiny-hyper")
            expect(slider.locator(".aec-label-right")).to_contain_text("JPEG")

            chart = page.locator("#rd-chart")
            expect(chart.locator(".main-svg").first).to_be_attached()
            expect(chart.locator(".legendtext", has_text="JPEG")).to_have_count(1)
            assert page.evaluate("typeof window.Plotly") == "object"
            assert not b.errors, b.errors
            assert not blocked and not b.outside, blocked + b.outside  # nothing fetched: works with no network
        finally:
            b.browser.close()


def test_gallery_steps_with_the_arrow_keys_in_a_clean_layout(chromium, server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        b = Browser(p, chromium, server)
        page = b.page
        try:
            page.set_viewport_size({"width": 1600, "height": 1200})
            page.goto(server + "/gallery")
            wait = 300_000  # each picture is coded at 25 KB by the default (shipped) model on first view
            expect(page.locator(".gallery-verdict")).to_be_visible(timeout=wait)
            expect(page.get_by_text("1 / 5 · Astronaut")).to_be_visible()
            page.wait_for_function(  # the sidebar collapsed: slid off the left edge, the page full width
                "() => { const s = document.querySelector('[data-testid=stSidebar]');"
                " return !s || s.getBoundingClientRect().right <= 1; }")
            page.locator(".gallery-verdict").click()  # the page has the focus, not a widget
            page.keyboard.press("ArrowRight")
            expect(page.get_by_text("2 / 5 · Coffee")).to_be_visible(timeout=wait)
            page.keyboard.press("ArrowLeft")
            expect(page.get_by_text("1 / 5 · Astronaut")).to_be_visible(timeout=wait)
            page.locator(".gallery-verdict").click()
            page.keyboard.press("ArrowLeft")
            expect(page.get_by_text("5 / 5 · Camera")).to_be_visible(timeout=wait)  # back past the first: the last
            slider = page.frame_locator("iframe[title='st.iframe']").locator("#aec-slider")
            expect(slider).to_contain_text("JPEG", timeout=wait)
            page.screenshot(path=str(ARTIFACTS / "gallery.png"))
            b.check_clean()
        finally:
            b.browser.close()
