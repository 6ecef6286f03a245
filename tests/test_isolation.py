"""Two people on the Compare page at once never see each other's image or results.

Sessions share the process's caches (models in `st.cache_resource`, results in
`st.cache_data`), so a cache key that forgot the image, or state kept in a module, would
show one person the other's picture. Two AppTest sessions take turns here (the load
benchmark, benchmarks/load.py, runs many at the same time); what each page shows is
checked against `aecore` run directly on that session's own pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from aecore import weights
from aecore.codecs import get_codec
from aecore.io import to_png_bytes
from aecore.metrics import psnr
from tests.hostile import base_rgb

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.fixture
def sessions(user_weights, tmp_path, monkeypatch) -> tuple[AppTest, AppTest]:
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "no_shipped_weights")
    return AppTest.from_file(APP, default_timeout=60), AppTest.from_file(APP, default_timeout=60)


def upload(at: AppTest, name: str, pixels: np.ndarray) -> AppTest:
    at.file_uploader(key="upload").set_value((name, to_png_bytes(pixels), "image/png")).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return at


def shown(at: AppTest) -> dict:
    """The learned codec's size and PSNR as the page's table shows them, and what it says it coded."""
    table = at.table[0].value
    column = table.columns[0]
    point = at.session_state["operating_point"]
    return {"bytes": int(table.loc["Size (bytes)", column].replace(",", "")),
            "psnr": table.loc["PSNR (dB)", column], "codec": point["codec"], "image": point["image"],
            "size": point["size"], "quality": point["quality"]}


def expected(pixels: np.ndarray, model: str, quality: float, name: str) -> dict:
    codec = get_codec(model)
    data = codec.encode(pixels, quality)
    h, w = pixels.shape[:2]
    return {"bytes": len(data), "psnr": f"{psnr(pixels, codec.decode(data)):.2f}", "codec": model,
            "image": name, "size": f"{w}x{h}", "quality": quality}


def default_quality(model: str) -> float:
    return float(round(get_codec(model).default_quality, 1))  # what the page's slider starts at


def test_two_sessions_see_only_their_own_image(sessions):
    a, b = sessions
    mine = base_rgb()
    theirs = np.ascontiguousarray(np.rot90(base_rgb())[:40, :33, 1])  # another size, grayscale
    a.session_state["model"] = "tiny-hyper"
    b.session_state["model"] = "tiny-seed"
    a.run()
    b.run()
    # The same file name in both sessions, different pixels: only the content may decide.
    upload(a, "photo.png", mine)
    upload(b, "photo.png", theirs)
    assert shown(a) == expected(mine, "tiny-hyper", default_quality("tiny-hyper"), "photo.png")
    assert shown(b) == expected(theirs, "tiny-seed", default_quality("tiny-seed"), "photo.png")

    a.slider(key="quality").set_value(7.0).run()  # one session's settings do not move the other's
    b.run()
    assert shown(a) == expected(mine, "tiny-hyper", 7.0, "photo.png")
    assert shown(b) == expected(theirs, "tiny-seed", default_quality("tiny-seed"), "photo.png")
    assert a.session_state["model"] == "tiny-hyper" and b.session_state["model"] == "tiny-seed"

    # Both on the same model and quality, with different pictures: still their own numbers.
    b.session_state["model"] = "tiny-hyper"
    b.slider(key="quality").set_value(7.0)
    b.run()
    assert shown(b) == expected(theirs, "tiny-hyper", 7.0, "photo.png") != shown(a)
    a.run()
    assert shown(a) == expected(mine, "tiny-hyper", 7.0, "photo.png")


def test_the_same_picture_in_two_sessions_gives_the_same_numbers(sessions):
    a, b = sessions
    for at in sessions:
        at.session_state["model"] = "tiny-hyper"
        at.run()
    upload(a, "one.png", base_rgb())
    upload(b, "two.png", base_rgb())  # a cache hit for b: same content, its own name
    first, second = shown(a), shown(b)
    assert first["image"] == "one.png" and second["image"] == "two.png"
    assert {k: v for k, v in first.items() if k != "image"} == {k: v for k, v in second.items() if k != "image"}
