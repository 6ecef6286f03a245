"""Gallery: a presentation walk through the sample photos (and yours), learned vs JPEG at one file size.

A thin shell: `aecore.gallery` holds the budgets, the walk and the key numbers,
`aecore.report` codes each picture, finds the zoom and block-grid crops and makes the
downloads. Full width, the sidebar collapsed, large type. The arrow keys (Left/Right) press
the previous/next buttons. Widget keys (tests set them): gallery_prev, gallery_next,
gallery_budget, gallery_bpp, gallery_view, gallery_upload, gallery_download_png,
gallery_download_html; session state "gallery_index" is the picture shown.
"""
from __future__ import annotations

import streamlit as st

from aecore import compare as cmp, gallery, report, weights
from aecore.io import sample_images
from aecore.viewer import slider_html
from pages import shared

INDEX_KEY = "gallery_index"
SLIDER, SIDE_BY_SIDE = "Slider", "Side by side"
STYLE = """<style>
  .gallery-verdict { font-size: 2.6rem; font-weight: 700; line-height: 1.15; margin: 0.2rem 0 0.4rem; }
  .gallery-sub { font-size: 1.35rem; color: #4a4c57; margin-bottom: 0.6rem; }
  .gallery-where { font-size: 1.2rem; color: #4a4c57; }
  [data-testid="stMetricValue"] { font-size: 2.4rem; }
  [data-testid="stMetricLabel"] p { font-size: 1.1rem; }
</style>"""


@st.cache_data(max_entries=32, show_spinner=False)
def coded(image_key: str, _pixels, name: str, model: str, stamp: str, target: report.Target) -> report.Item:
    """One picture at the target, keyed by its source and the settings (not by the pixels)."""
    return report.make_item(name, _pixels, model, target, codecs=shared.codec)


def pictures() -> list[tuple[str, str, object, str]]:
    """(name, cache key, pixels, source for the command line) of the samples, then the uploads."""
    shown = [(name, f"sample:{name}", pixels, f"sample:{name}") for name, pixels in sample_images().items()]
    with st.expander("Add your own pictures"):
        files = st.file_uploader("Pictures", type=shared.UPLOAD_TYPES, accept_multiple_files=True,
                                 key="gallery_upload", help="They join the walk after the samples.")
    for name, (key, pixels) in shared.read_uploads(files).items():
        if pixels.shape[0] * pixels.shape[1] > cmp.LARGE_PIXELS:
            pixels = shared.downscaled(key, pixels, cmp.LARGE_PIXELS)
        shown.append((name, f"{key}|{pixels.shape}", pixels, name))
    return shown


def walk(count: int):
    """Previous/next buttons (and the arrow keys); returns the index of the picture to show."""
    index = st.session_state.get(INDEX_KEY, 0)
    index = index if isinstance(index, int) and 0 <= index < count else 0
    prev, middle, nxt = st.columns([1, 6, 1], vertical_alignment="center")
    if prev.button("Previous", key="gallery_prev", icon=":material/arrow_back:", shortcut="Left", width="stretch"):
        index = gallery.step(index, -1, count)
    if nxt.button("Next", key="gallery_next", icon=":material/arrow_forward:", icon_position="right",
                  shortcut="Right", width="stretch"):
        index = gallery.step(index, +1, count)
    st.session_state[INDEX_KEY] = index
    return index, middle


def settings(column) -> tuple[report.Target, str]:
    with column:
        left, mid, right = st.columns([3, 2, 2], vertical_alignment="bottom")
        choice = left.segmented_control("File size per picture", gallery.CHOICES, default=gallery.DEFAULT_CHOICE,
                                        key="gallery_budget", required=True)
        bpp = gallery.DEFAULT_BPP
        if choice == gallery.BPP:
            bpp = mid.number_input("Bits per pixel", 0.02, 4.0, gallery.DEFAULT_BPP, 0.05, key="gallery_bpp")
        view = right.segmented_control("View", [SLIDER, SIDE_BY_SIDE], default=SLIDER, key="gallery_view",
                                       required=True)
    return gallery.target_for(choice, bpp), view


def crops(item: report.Item, box, caption: str) -> None:
    comp = item.comparison
    cols = st.columns(3)
    for col, (label, pixels) in zip(cols, (("Original", comp.original), (item.learned.label, item.learned.decoded),
                                            ("JPEG", item.jpeg.decoded))):
        col.image(report.magnified(box.crop(pixels), 420), caption=label, width="stretch")
    st.caption(caption)


def main() -> None:
    st.set_page_config(layout="wide", initial_sidebar_state="collapsed")
    st.html(STYLE)
    model = shared.selected_model()
    if model is None:
        st.title("Gallery")
        st.info("The gallery needs learned weights; none are installed yet.", icon=":material/info:")
        return
    shown = pictures()
    index, header = walk(len(shown))
    name, key, pixels, source = shown[index]
    target, view = settings(header)
    header.markdown(f"**{index + 1} / {len(shown)} · {shared.md_escape(name)}**")
    try:
        with st.spinner("Coding at this size..."):
            item = coded(key, pixels, name, model, weights.stamp(model), target)
    except Exception as e:  # noqa: BLE001  (on stage: a message, never a traceback)
        st.error(f"Could not code this picture: {shared.md_escape(str(e))}", icon=":material/error:")
        return
    st.markdown(f'<div class="gallery-verdict">{shared.md_escape(gallery.headline(item))}</div>'
                f'<div class="gallery-sub">{shared.md_escape(item.verdict)}</div>', unsafe_allow_html=True)
    for note in item.comparison.notes:
        st.warning(note, icon=":material/warning:")
    for col, (label, value, detail) in zip(st.columns(4), gallery.key_numbers(item)):
        col.metric(label, value, delta=detail, delta_color="off", delta_arrow="off")

    command = report.command_line([source], target, [model, "jpeg"],
                                  max_pixels=cmp.LARGE_PIXELS if key.startswith("upload:") else None)
    if view == SLIDER:
        images = {"Original": item.comparison.original, item.learned.display_name: item.learned.decoded,
                  item.jpeg.display_name: item.jpeg.decoded}
        st.iframe(slider_html(images, item.learned.display_name, item.jpeg.display_name, height=700), height=700)
    else:
        st.image(report.figure(item, report.provenance(model, target, command, codecs=shared.codec)),
                 width="stretch")

    st.markdown('<div class="gallery-where">Zoomed in where the difference is most visible: the spot where '
                "JPEG's error most exceeds the learned codec's.</div>", unsafe_allow_html=True)
    crops(item, item.zoom, f"Crop at x {item.zoom.x}, y {item.zoom.y}, {item.zoom.size} px, enlarged.")
    st.markdown("<div class=\"gallery-where\">JPEG's 8×8 block grid.</div>", unsafe_allow_html=True)
    crops(item, item.grid, item.grid_text)

    a, b, _ = st.columns([1, 1, 3])
    shared.export_buttons(item, target, command, ("gallery_download_png", "gallery_download_html"), (a, b))
    st.caption(f"Rebuild from the command line: `{command}`")


main()
