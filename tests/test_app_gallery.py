"""The Gallery page through AppTest: the walk (buttons and their arrow-key shortcuts), budgets, views."""
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from aecore import gallery, weights

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.fixture
def app(user_weights, tmp_path, monkeypatch, photo) -> AppTest:
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    from skimage.data import coffee
    crops = {"Astro": photo, "Cup": np.ascontiguousarray(coffee()[40:136, 100:228]), "Dark": photo // 3}
    monkeypatch.setattr("aecore.io.sample_images", lambda: dict(crops))  # read by the page at run time
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model"] = "tiny-hyper"
    at.switch_page("pages/gallery.py")
    return at


def shown(at) -> str:
    return next(m.value for m in at.markdown if " / 3 · " in m.value)


def test_walk_with_buttons_wraps_round(app):
    at = app.run()
    assert not at.exception, at.exception
    assert shown(at) == "**1 / 3 · Astro**"
    at.button(key="gallery_next").click().run()
    assert shown(at) == "**2 / 3 · Cup**" and at.session_state["gallery_index"] == 1
    at.button(key="gallery_next").click().run()
    at.button(key="gallery_next").click().run()
    assert shown(at) == "**1 / 3 · Astro**"  # past the last, the first again
    at.button(key="gallery_prev").click().run()
    assert shown(at) == "**3 / 3 · Dark**"
    # The arrow keys press these buttons: their shortcuts are part of the page.
    assert at.button(key="gallery_prev").proto.shortcut.lower() == "left"
    assert at.button(key="gallery_next").proto.shortcut.lower() == "right"
    assert not at.exception


def test_budget_choice_codes_to_that_size(app):
    at = app.run()
    verdict = next(m.value for m in at.markdown if "gallery-verdict" in m.value)
    assert "Learned" in verdict
    sizes = {}
    for choice in ("10 KB", "50 KB"):
        at.segmented_control(key="gallery_budget").set_value(choice).run()
        assert not at.exception, at.exception
        size = next(m for m in at.metric if m.label == "File size")
        sizes[choice] = size.value
    at.segmented_control(key="gallery_budget").set_value(gallery.BPP).run()
    at.number_input(key="gallery_bpp").set_value(0.3).run()
    assert not at.exception, at.exception
    size = next(m for m in at.metric if m.label == "File size")
    assert "--bpp 0.3" in at.caption[-1].value and "--samples Astro" in at.caption[-1].value
    # The tiny model's largest file is far under 10 KB: both budgets give it; 0.3 bpp on 96x128 is 460 B.
    assert sizes["10 KB"] == sizes["50 KB"]
    assert int(size.value.split()[0]) <= 460


def test_views_and_downloads(app):
    at = app.run()
    assert len(at.get("iframe")) == 1 and len(at.get("image")) == 6  # the slider; zoom and grid crops, 3 each
    at.segmented_control(key="gallery_view").set_value("Side by side").run()
    assert not at.exception, at.exception
    assert not at.get("iframe") and len(at.get("image")) == 7  # the figure in its place
    keys = {b.proto.id for b in at.get("download_button")}
    assert any("gallery_download_png" in k for k in keys) and any("gallery_download_html" in k for k in keys)


def test_compare_page_offers_the_figure_and_report(user_weights, tmp_path, monkeypatch, photo):
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    monkeypatch.setattr("aecore.io.sample_images", lambda: {"Astro": photo})
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model"] = "tiny-hyper"
    at.run()
    assert not at.exception, at.exception
    keys = " ".join(b.proto.id for b in at.get("download_button"))
    assert "download_figure" in keys and "download_report" in keys
    at.radio(key="right_setting").set_value("Quality").run()  # JPEG at a fixed quality: not the report's rule
    keys = " ".join(b.proto.id for b in at.get("download_button"))
    assert "download_figure" not in keys and "download_report" not in keys
