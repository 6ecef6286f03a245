"""Inside the model: the multi-resolution latents of one image, and where the bits go.

A thin shell: `aecore.latents` runs the encoder, estimates each coded value's bits from the
model's own likelihoods and draws the channel grids and the heatmap; this page reads the
widgets, caches one analysis per (image, weights, quality) and lays the pictures out.
Widget keys (tests set them): inside_upload, inside_sample, inside_quality, inside_channels,
inside_normalize.
"""
from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
import streamlit as st

from aecore import compare as cmp
from aecore import imaging, latents, weights
from pages import shared

# Larger photos are analysed on a copy at most this wide or tall: the maps stay readable and the
# encoder runs in one piece (no tiles), so the seed model's pooling stages can be shown.
MAX_SIDE = 768
LATENT_COLOURS = {"y": "#1f77b4", "z": "#ff7f0e"}
RESOLUTION_WORDS = {
    "y": "the main latent, one value per channel for every {f}×{f} pixels",
    "z": "the hyperprior's side information, one value per {f}×{f} pixels: it tells the decoder how "
         "spread out each value of y is, so y costs fewer bits",
}


@st.cache_data(max_entries=8, show_spinner=False)
def analysed(image_key: str, _image, model: str, stamp: str, quality: float) -> dict:
    """The latents, bits and maps of one image (keyed by its hash, the weights and the quality)."""
    return latents.analyse(shared.codec(model).model, _image, quality)


@st.cache_data(max_entries=8, show_spinner=False)
def file_size(image_key: str, _image, model: str, stamp: str, quality: float) -> int:
    """The real .aec file's bytes, header included: what the estimate is checked against."""
    return len(shared.codec(model).encode(_image, quality))


@st.cache_data(max_entries=8, show_spinner=False)
def pictures(run_key: str, _image, _view: dict, n: int, normalize: bool) -> dict:
    """Everything drawn from one analysis: heatmap overlay, channel grids, quantization tiles."""
    vmax = float(np.percentile(_view["bits_map"], 99)) or 1.0
    qz = _view["quantization"]
    pair = np.stack([qz["before"], qz["after"]])
    return {
        "overlay": latents.overlay(_image, _view["bits_map"], alpha=0.6, vmax=vmax),
        "vmax": vmax,
        "legend": imaging.error_legend(360, 14),
        "latents": [latents.channel_grid(lat["values"], n, normalize, min_tile=96, signed=True)
                    for lat in _view["latents"]],
        "features": [latents.channel_grid(f["values"], n, normalize, min_tile=96) for f in _view["features"]],
        # before and after side by side on one scale, so the rounding is the only difference
        "quantization": latents.channel_grid(pair, 2, normalize=False, columns=2, min_tile=200, gap=6,
                                             signed=True),
    }


def controls(model: str) -> tuple[float, int, bool]:
    codec = shared.codec(model)
    lo, hi = (float(v) for v in codec.quality_range)
    if not isinstance(st.session_state.get("inside_quality"), (int, float)):
        compare_quality = st.session_state.get("quality")  # the Compare page's setting, when there is one
        st.session_state["inside_quality"] = float(compare_quality) if isinstance(
            compare_quality, (int, float)) and lo <= compare_quality <= hi else float(round(codec.default_quality, 1))
    st.session_state["inside_quality"] = min(hi, max(lo, st.session_state["inside_quality"]))
    quality = st.slider("Quality", lo, hi, step=0.1, format="%.1f", key="inside_quality",
                        help="The learned codec's quality: higher keeps more of the latents, at more bits.")
    n = st.slider("Channels shown per resolution", 4, 32, 16, step=4, key="inside_channels",
                  help="The costliest channels first.")
    normalize = st.checkbox("Scale each channel on its own", value=True, key="inside_normalize",
                            help="On: every channel's pattern is visible. Off: one scale for all, so you see "
                                 "which channels are strong.")
    return quality, n, normalize


def where_the_bits_go(name: str, image, view: dict, pics: dict, real_bytes: int) -> None:
    st.subheader("Where the bits go")
    h, w = image.shape[:2]
    est_bytes = view["total_bits"] / 8
    a, b, c = st.columns(3)
    a.metric("Estimated from the model", f"{view['bpp']:.3f} bpp", delta=cmp.format_bytes(round(est_bytes)),
             delta_color="off", delta_arrow="off",
             help="The sum over every coded value of -log2(its likelihood under the model): the ideal "
                  "entropy coder's cost, without the file's header.")
    a_bpp = 8 * real_bytes / (h * w)
    b.metric("The real .aec file", f"{a_bpp:.3f} bpp", delta=cmp.format_bytes(real_bytes), delta_color="off",
             delta_arrow="off", help="Encoded for real: every byte of the file, header included.")
    y_share = view["latents"][0]["total_bits"] / view["total_bits"] * 100 if view["total_bits"] else 0
    c.metric("Spent on y", f"{y_share:.0f}%", help="The rest is side information (the hyperprior's z)."
             if len(view["latents"]) > 1 else "The seed model codes y alone.")
    photo_col, heat_col = st.columns(2)
    photo_col.image(image, caption=f"{shared.md_escape(name)} · {w}×{h} px", width="stretch")
    heat_col.image(pics["overlay"], caption="Estimated bits per pixel over the photo (shown in gray)",
                   width="stretch")
    legend_col, text_col = st.columns([1, 2])
    legend_col.image(pics["legend"], caption=f"0 → {pics['vmax']:.2f}+ bits per pixel", width="stretch")
    text_col.caption(
        "Bright means expensive. The cost follows the content, edges and texture, rather than a grid: "
        "the encoder describes the picture with smooth, overlapping features, not 8×8 blocks as JPEG does. "
        "Each value of {name} covers a {f}×{f} patch and the map is drawn smoothly between them.".format(
            name=view["latents"][0]["name"], f=view["latents"][0]["factor"]))


def resolutions(view: dict, pics: dict, n: int) -> None:
    st.subheader("The latents, at each resolution")
    st.caption("What the file actually stores: feature maps far smaller than the picture. Each tile is one "
               "channel, costliest first; mid-gray is zero, lighter positive, darker negative. These are "
               "learned features, not pixels: together they let the decoder redraw the image.")
    cols = st.columns(len(view["latents"]))
    for col, lat, grid in zip(cols, view["latents"], pics["latents"]):
        c, lh, lw = lat["values"].shape
        with col:
            st.markdown(f"**{lat['name']}** · 1/{lat['factor']} of the size · {c} channels of {lw}×{lh}")
            st.image(grid, caption=f"The {min(n, c)} costliest of {c} channels", width="content")
            st.caption(RESOLUTION_WORDS.get(lat["name"], "").format(f=lat["factor"]).capitalize() + ".")


def channel_rates(view: dict) -> None:
    st.subheader("Rate of each channel")
    fig = go.Figure()
    total = view["total_bits"] or 1.0
    for lat in view["latents"]:
        bits = lat["channel_bits"]
        fig.add_trace(go.Bar(
            x=[f"{lat['name']}{c}" for c in lat["channels"]], y=bits, name=f"{lat['name']} (1/{lat['factor']})",
            marker_color=LATENT_COLOURS.get(lat["name"]), customdata=bits / total * 100,
            hovertemplate="channel %{x}<br>%{y:,.0f} bits · %{customdata:.1f}% of the file<extra></extra>"))
    fig.update_layout(height=320, margin={"t": 10, "b": 10, "l": 10, "r": 10}, bargap=0.15,
                      xaxis={"title": "channel, costliest first", "type": "category", "showticklabels": False},
                      yaxis={"title": "bits"}, legend={"orientation": "h", "y": 1.1, "x": 0})
    st.plotly_chart(fig, key="inside_rates", config={"displaylogo": False})
    y = view["latents"][0]["channel_bits"]
    k = int(np.searchsorted(np.cumsum(y), 0.9 * y.sum())) + 1 if y.sum() > 0 else 0
    st.caption(f"{k} of y's {len(y)} channels carry 90% of its bits. The model learns to spend bits on a few "
               "channels and leave the rest near zero, which costs almost nothing; at higher quality more "
               "channels wake up.")


def quantization(view: dict, pics: dict) -> None:
    st.subheader("Quantization: where information is lost")
    qz = view["quantization"]
    before, after = qz["before"], qz["after"]
    a, c = st.columns([1, 1], gap="large")
    a.image(pics["quantization"], width="stretch",
            caption=f"y channel {qz['channel']}, the costliest: left as the encoder computes it, right after "
                    "rounding (what the file stores)")
    row = before.shape[0] // 2
    fig = go.Figure([
        go.Scatter(y=before[row], name="before rounding", mode="lines+markers", line={"color": "#1f77b4"}),
        go.Scatter(y=after[row], name="after rounding", mode="lines", line={"shape": "hvh", "color": "#d62728"}),
    ])
    fig.update_layout(height=260, margin={"t": 10, "b": 10, "l": 10, "r": 10},
                      xaxis={"title": f"position along row {row}"}, yaxis={"title": "value"},
                      legend={"orientation": "h", "y": 1.15, "x": 0})
    with c:
        st.plotly_chart(fig, key="inside_quantization", config={"displaylogo": False})
    shift = "around the mean the hyperprior predicts, " if len(view["latents"]) > 1 else ""
    st.caption(f"The encoder's output is real-valued; the codec rounds it to whole numbers ({shift}in steps set "
               "by the quality) and entropy-codes the integers. Rounding is the one step that throws information "
               "away: the transforms on either side lose nothing by themselves. Higher quality means finer "
               "steps, more distinct integers and more bits.")


def pooling_stages(view: dict, pics: dict, n: int) -> None:
    st.subheader("Inside the encoder: after each pooling stage")
    st.caption("The seed model's encoder is convolutions with ReLU, then 2×2 max pooling, four times: every stage halves "
               "the size and builds features from the stage before, from edges and colours to larger patterns. "
               "The last stage feeds y. Black is zero (the ReLU switches a feature off), white is strong.")
    tabs = st.tabs([f"1/{f['factor']} · {f['values'].shape[0]} channels" for f in view["features"]])
    for tab, f, grid in zip(tabs, view["features"], pics["features"]):
        c, fh, fw = f["values"].shape
        tab.image(grid, caption=f"{f['name']}: the {min(n, c)} strongest of {c} channels, {fw}×{fh} each",
                  width="content")


def main() -> None:
    st.title("Inside the model")
    st.caption("What the autoencoder keeps, and where it spends its bits: features at several resolutions, "
               "not 8×8 blocks.")
    model = shared.selected_model()
    if model is None:
        st.info("No learned weights are installed yet, so there is no model to look inside. Trained weights "
                "appear here as soon as they are saved.", icon=":material/hourglass_empty:")
        return
    pick_col, ctl_col = st.columns([5, 6], gap="large")
    with pick_col:
        picked = shared.pick_image("inside_")
    if picked is None:
        return
    name, key, pixels, _ = picked
    with ctl_col:
        with st.container(border=True):
            st.markdown(f"**{shared.md_escape(shared.codec(model).label)}** (change the model in the sidebar)")
            quality, n, normalize = controls(model)
    image = imaging.preview(pixels, MAX_SIDE)
    if image is not pixels:
        st.caption(f"Analysing a {image.shape[1]}×{image.shape[0]} copy of the "
                   f"{pixels.shape[1]}×{pixels.shape[0]} original.")
    image_key = f"{key}|{image.shape}"
    stamp = weights.stamp(model)
    try:
        with st.spinner("Running the encoder..."):
            view = analysed(image_key, image, model, stamp, quality)
            real = file_size(image_key, image, model, stamp, quality)
            pics = pictures(f"{image_key}|{model}|{stamp}|{quality}", image, view, n, normalize)
    except Exception as e:  # noqa: BLE001  (on stage: a message, never a traceback)
        st.error(f"Could not analyse this image: {shared.md_escape(str(e))}", icon=":material/error:")
        return

    st.divider()
    where_the_bits_go(name, image, view, pics, real)
    resolutions(view, pics, n)
    channel_rates(view)
    quantization(view, pics)
    if view["features"]:
        pooling_stages(view, pics, n)
    else:
        st.caption("This architecture halves the size with strided convolutions inside its layers, so there are "
                   "no separate pooling stages to show; the seed model (pick it in the sidebar) has them.")


main()
