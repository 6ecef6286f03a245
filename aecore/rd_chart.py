"""The rate-distortion chart: bpp against PSNR and MS-SSIM (dB), one Plotly figure.

    fig = figure(rd.sweep(images, plan), averaged=True, label=lambda name: get_codec(name).label)
    fig.to_html(include_plotlyjs=True)   # one self-contained page

Shared by the Rate-distortion page and the exported reports, so both draw the same chart.
`rows` are `aecore.rd.sweep` rows (or their averages); `label(codec)` gives a display name.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .codecs import classical_names, learned_names
from .metrics import ms_ssim_db

# The rate axis shows up to this many bpp (more if a learned curve goes further): classical
# codecs at quality 90 reach 3 to 8 bpp, near lossless, and would squeeze the useful range.
X_LIMIT = 3.0
# Published names that are our classical codecs, so both share a colour (ours solid, theirs dashed).
PUBLISHED_KIN = {"JPEG (": "jpeg", "JPEG 4:2:0": "jpeg", "WebP": "webp", "JPEG2000": "jpeg2000", "AV1": "avif",
                "BPG": "heic", "HEVC": "heic"}  # BPG and HM code HEVC intra frames, as HEIC does
AXIS_TITLES = {"ms_ssim_db": ("MS-SSIM in dB, higher is better", "dB"),
               "ssimulacra2": ("SSIMULACRA 2 (100 = identical), higher is better", "score")}


def colours(codecs: list[str]) -> dict[str, str]:
    """One colour per codec, learned models first, stable across scopes."""
    order = learned_names() + classical_names()
    order += [c for c in codecs if c not in order]
    palette = qualitative.D3
    return {c: palette[i % len(palette)] for i, c in enumerate(order)}


def published_kin(name: str) -> str | None:
    """Our codec that a published curve is a measurement of (JPEG, WebP, ...), if any."""
    return next((ours for prefix, ours in PUBLISHED_KIN.items() if name.startswith(prefix)), None)


def finite(values) -> list:
    """Plotly draws None as a gap; infinite PSNR (a lossless point) or NaN MS-SSIM becomes one."""
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def figure(rows: list[dict], averaged: bool, point: dict | None = None,
           references: list[dict] | None = None, metric: str = "ms_ssim_db", label=str) -> go.Figure:
    """bpp against PSNR (left) and `metric` (right: MS-SSIM in dB or SSIMULACRA 2): ours solid, published dashed.

    `point` (bpp, psnr, ms_ssim, bytes, quality, label) is starred; `references` are published
    curves ({"codec", "colour", "points"}); `label(codec)` names our codecs in the legend.
    """
    title, unit = AXIS_TITLES[metric]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("PSNR (RGB), higher is better", title))
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    colour = colours(codecs)
    mean = "mean over %{customdata[5]} images<br>" if averaged else ""
    for codec in codecs:
        pts = sorted((r for r in rows if r["codec"] == codec), key=lambda r: r["quality"])
        custom = [[p["quality"], p["bytes"], p["psnr"], p["ms_ssim"], p["ms_ssim_db"], p.get("images", 1),
                   p.get("ssimulacra2", math.nan)] for p in pts]
        name = label(codec)
        score = "<br>SSIMULACRA 2 %{customdata[6]:.1f}" if metric == "ssimulacra2" else ""
        hover = (f"<b>{name}</b> quality %{{customdata[0]:g}}<br>{mean}%{{customdata[1]:,.0f}} bytes · "
                 "%{x:.3f} bpp<br>PSNR %{customdata[2]:.2f} dB<br>MS-SSIM %{customdata[3]:.4f} "
                 f"(%{{customdata[4]:.2f}} dB){score}<extra></extra>")
        for col, key in ((1, "psnr"), (2, metric)):
            fig.add_trace(go.Scatter(
                x=[p["bpp"] for p in pts], y=finite(p.get(key, math.nan) for p in pts), mode="lines+markers", name=name,
                legendgroup=codec, showlegend=col == 1, customdata=custom, hovertemplate=hover,
                line={"color": colour[codec], "width": 2.5 if codec in learned_names() else 1.8},
                marker={"size": 6}), row=1, col=col)
    for ref in references or []:
        kin = published_kin(ref["codec"])
        name = f"{ref['codec']} (published)"
        hover = (f"<b>{ref['codec']}</b> (published)<br>%{{x:.3f}} bpp · %{{y:.2f}} dB<br>"
                 f"{ref['points'][0]['source']}<extra></extra>")
        for col, key in ((1, "psnr"), (2, metric)):
            values = finite(p.get(key, math.nan) for p in ref["points"])
            fig.add_trace(go.Scatter(
                x=[p["bpp"] for p in ref["points"]], y=values, mode="lines", name=name, legendgroup=name,
                showlegend=col == 1, hovertemplate=hover, opacity=0.85,
                line={"dash": "dash", "width": 1.6, "color": ref["colour"] or colour.get(kin, "#777777")}),
                row=1, col=col)
    if point is not None:
        hover = (f"<b>Compare page</b>: {point['label']} at quality {point['quality']:g}<br>"
                 f"{point['bytes']:,} bytes · {point['bpp']:.3f} bpp<br>PSNR {point['psnr']:.2f} dB<br>"
                 f"MS-SSIM {point['ms_ssim']:.4f}<extra></extra>")
        second = ms_ssim_db(point["ms_ssim"]) if metric == "ms_ssim_db" else point.get(metric, math.nan)
        for col, value in ((1, point["psnr"]), (2, second)):
            fig.add_trace(go.Scatter(
                x=[point["bpp"]], y=finite([value]), mode="markers", name="Compare page's point",
                legendgroup="operating point", showlegend=col == 1, hovertemplate=hover,
                marker={"symbol": "star", "size": 17, "color": "#FFD500", "line": {"width": 1.5, "color": "#222"}}),
                row=1, col=col)
    fig.update_xaxes(title_text="bits per pixel (whole file)", rangemode="tozero")
    top = x_limit(fig, rows)
    if top is not None:
        fig.update_xaxes(range=[0, top])
    fig.update_yaxes(title_text="dB", row=1, col=1)
    fig.update_yaxes(title_text=unit, row=1, col=2)
    fig.update_layout(height=520, margin={"t": 40, "b": 10, "l": 10, "r": 10}, hovermode="closest",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.14, "xanchor": "left", "x": 0})
    return fig


def x_limit(fig: go.Figure, rows: list[dict]) -> float | None:
    """Where the rate axis stops: at X_LIMIT bpp (or past the learned curves, if they go further)
    when near-lossless classical points lie beyond, so the range where codecs differ is readable.
    None: every point fits. The chart's autoscale button still shows them all."""
    xs = [x for trace in fig.data for x in (trace.x or ()) if x is not None]
    learned = [r["bpp"] for r in rows if r["codec"] in learned_names()]
    top = max([X_LIMIT] + [1.15 * b for b in learned])
    return top if xs and max(xs) > top else None
