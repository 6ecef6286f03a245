"""The aecore studio: a learned image codec beside JPEG, in the browser.

    streamlit run streamlit_app.py

This file is the router and the picture frame: it sets up the page, draws the sidebar
(model picker, a few words on what this is) and runs the page chosen in the navigation.
The pages live in pages/ and are listed here explicitly; helpers the pages share are in
pages/shared.py (see its docstring for the session state keys every page may read).
"""
import os

# Torch's OpenMP threads spin while they wait for work. Beside Streamlit's own threads and
# other sessions on the same cores that spinning took the cores the coding needed (a warm
# 768x512 encode took 1.6-3.1 s with it, 0.4-0.7 s without, on two busy cores), so the app's
# threads sleep instead. OpenMP reads this once, when torch loads: it must be set before
# anything imports torch. The command line keeps OpenMP's default (fastest on idle cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from aecore import weights  # noqa: E402
from pages import shared  # noqa: E402


def _icon():
    """The tab icon, drawn here: a Material icon name would make the browser fetch it from the web."""
    import numpy as np
    from PIL import Image

    icon = np.zeros((32, 32, 3), np.uint8)
    icon[:, :16] = (255, 75, 75)   # one side of a before/after split ...
    icon[:, 16:] = (49, 51, 63)    # ... and the other
    icon[:, 15:17] = 255           # the divider
    return Image.fromarray(icon)  # set_page_config takes images, not arrays


st.set_page_config(page_title="aecore: learned image compression", page_icon=_icon(), layout="wide")

# Addresses use dashes, unlike the file names: Streamlit also scans pages/ by file name,
# and a link or reload of /rate_distortion would run that file alone, without this router.
PAGES = [
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:", default=True),
    st.Page("pages/rate_distortion.py", title="Rate-distortion", icon=":material/monitoring:",
            url_path="rate-distortion"),
    st.Page("pages/fine_tune.py", title="Fine-tune", icon=":material/tune:", url_path="fine-tune"),
    st.Page("pages/inside_model.py", title="Inside the model", icon=":material/layers:",
            url_path="inside-model"),
    st.Page("pages/gallery.py", title="Gallery", icon=":material/slideshow:", url_path="gallery"),
]


def model_picker() -> None:
    """The learned weights every page uses, remembered under `shared.MODEL_KEY`."""
    models = shared.learned_models()
    if not models:
        st.session_state[shared.MODEL_KEY] = None
        st.info("No learned weights are installed yet, so only the classical codecs can be compared. "
                "Trained weights appear here as soon as they are saved.", icon=":material/info:")
        return
    if st.session_state.get(shared.MODEL_KEY) not in models:
        st.session_state[shared.MODEL_KEY] = shared.default_model(models)
    name = st.selectbox("Model", list(models), format_func=lambda n: models[n], key=shared.MODEL_KEY,
                        help="The learned codec: named weights. Fine-tuned weights appear here too.")
    card = _card(name)
    # The box cuts a long name to the sidebar's width; the caption below wraps, so it gives the whole name.
    facts = [models[name], card.get("config", {}).get("arch", ""), f"{card['parameters'] / 1e6:.2f} M parameters"
             if card.get("parameters") else ""]
    st.caption(" · ".join(shared.md_escape(f) for f in facts if f))


def _card(name: str) -> dict:
    try:
        return weights.read_card(name)
    except (OSError, ValueError):
        return {}


# Streamlit's own sidebar list is off (.streamlit/config.toml: for a pages/ folder it would
# list the files there until this runs); the navigation is drawn here, as links, instead.
shared.freeze_long_lived_objects()
navigation = st.navigation(PAGES, position="hidden")

with st.sidebar:
    for page in PAGES:
        st.page_link(page)
    st.divider()
    model_picker()
    st.divider()
    st.markdown(
        "**What is this?** A convolutional autoencoder that compresses images into real files, "
        "shown beside JPEG at the same file size: same bytes, judge the pixels. "
        "Rate is the whole file, 8 x bytes / pixels; quality is PSNR and MS-SSIM on RGB."
    )

navigation.run()
