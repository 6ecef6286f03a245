"""Shareable results: a slide-ready PNG figure, a self-contained HTML report and the numbers as CSV.

    target = Target.parse(budget="25KB")                       # or bpp="0.25", or neither
    report = build({"photo": pixels}, "hyperprior", target)
    paths = write(report, "out/")      # photo.png, report.html, report.csv, rd.csv, the coded files

    python -m aecore report photo.png --budget 25KB --out out/     # the same from the shell

Why: a presentation needs pictures and numbers that anyone can check, so every report says
how it was made (model, weights hash, library versions, the matched-size rule and the
command that rebuilds it), holds no clock time, and is rebuilt byte for byte from the same
inputs: learned streams are deterministic, JPEG is, and the figure is drawn from them.

The matched-size rule: the learned codec is coded at the highest quality whose file fits
the budget (`aecore.target.fit`; the default quality when there is no budget); every classical codec
at its highest quality whose file is no larger than the learned file (`compare.matched`),
so the learned codec never wins by spending more bytes. The report's numbers are
`aecore.metrics.evaluate` on the decoded files, the same as `python -m aecore rd` gives at
those qualities; its rate-distortion curves are `aecore.rd.sweep` with the command line's
default qualities.
"""
from __future__ import annotations

import html
import io
import json
import math
import platform
import re
import shlex
from dataclasses import dataclass, field
import functools
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from . import __version__, compare as cmp, imaging, rd, rd_chart
from .codecs import get_codec
from .io import atomic_write, to_rgb
from .target import bpp_budget, parse_size
from .regions import Region, block_grid_region, grid_words, worst_region
from .viewer import png_data_uri, slider_html

CROP = 128            # side of the zoomed crops, in image pixels
PANEL = 384           # side of one panel of the figure, in figure pixels
LIBRARIES = ("torch", "numpy", "opencv-python-headless", "pillow", "constriction", "scikit-image", "plotly")
CSV_COLUMNS = ("image", "codec", "label", "kind", "quality", *rd.METRICS, "budget_bytes", "over_budget",
               "zoom_y", "zoom_x", "zoom_size", "grid_y", "grid_x", "grid_size")


@dataclass(frozen=True)
class Target:
    """How large each file may be: `budget` bytes, `bpp` bits per pixel, or neither (default quality)."""

    budget: int | None = None
    bpp: float | None = None
    quality: float | None = None  # the learned codec's quality, when there is no budget

    def __post_init__(self):
        if sum(v is not None for v in (self.budget, self.bpp, self.quality)) > 1:
            raise ValueError("give one of a byte budget, a bpp or a quality, not two")
        if self.bpp is not None:
            bpp_budget(self.bpp, 1, 1)  # refuses what is not a positive number

    @classmethod
    def parse(cls, budget: str | None = None, bpp: str | float | None = None,
              quality: float | None = None) -> "Target":
        if bpp is not None:
            try:
                bpp = float(bpp)
            except ValueError:
                raise ValueError(f"cannot read {bpp!r} as bits per pixel; write it like 0.25") from None
        return cls(budget=None if budget is None else parse_size(budget), bpp=bpp, quality=quality)

    def bytes_for(self, shape) -> int | None:
        """The byte budget for an image of `shape` (bpp x pixels / 8, rounded down); None: no budget."""
        if self.bpp is not None:
            return max(1, bpp_budget(self.bpp, shape[0], shape[1]))
        return self.budget

    @property
    def text(self) -> str:
        if self.bpp is not None:
            return f"{self.bpp:g} bpp"
        if self.quality is not None:
            return f"quality {self.quality:g}"
        return "the default quality" if self.budget is None else cmp.format_bytes(self.budget)

    @property
    def args(self) -> list[str]:
        """The command-line flags that ask for this target."""
        if self.bpp is not None:
            return ["--bpp", f"{self.bpp:g}"]
        if self.quality is not None:
            return ["--quality", f"{self.quality:g}"]
        return [] if self.budget is None else ["--budget", str(self.budget)]


def rule(target: Target, learned: str) -> str:
    """The matched-size rule in one sentence."""
    first = (f"{learned} at {target.text}" if target.bytes_for((1, 1)) is None else
             f"{learned} at the highest quality whose file fits in {target.text}")
    return (f"{first}; each classical codec at its highest quality whose file is no larger than the {learned} "
            "file (whole files, headers included; 1 KB = 1000 bytes).")


@dataclass
class Item:
    """One image of a report: the comparison, the zoomed crop and the block-grid crop."""

    name: str
    comparison: cmp.Comparison
    budget: int | None
    zoom: Region
    grid: Region
    grid_text: str

    @property
    def learned(self) -> cmp.CodecResult:
        return self.comparison.learned

    @property
    def jpeg(self) -> cmp.CodecResult:
        return self.comparison.reference

    @property
    def verdict(self) -> str:
        return cmp.verdict(self.comparison)


def make_item(name: str, image: np.ndarray, learned: str, target: Target, classical=("jpeg",),
              codecs=None) -> Item:
    """`image` coded by `learned` for `target` and by each classical codec matched to its size."""
    resolve = codecs or get_codec
    codec = resolve(learned)
    if codec.kind != "learned":
        raise ValueError(f"{learned!r} is not a learned codec; name learned weights first")
    budget = target.bytes_for(image.shape)
    quality = codec.default_quality if target.quality is None else target.quality
    first = cmp.code(codec, image, quality) if budget is None else cmp.matched(codec, image, budget)
    results = [first] + [cmp.matched(resolve(name), image, first.num_bytes)
                         for name in dict.fromkeys([cmp.REFERENCE, *classical])]
    comp = cmp.Comparison(original=image, results=results, mode=cmp.SAME_SIZE, budget=first.num_bytes,
                          notes=[r.note for r in results if r.over_budget])
    return item_from(name, comp, budget)


def crops(comp: cmp.Comparison) -> tuple[Region, Region, str]:
    """An item's zoom and block-grid crops of a comparison, and the words on the grid (a search
    over the decoded images: about 0.2 s at 768x512)."""
    ours, theirs = comp.learned.decoded, comp.reference.decoded
    grid = block_grid_region(ours, theirs, CROP)
    return (worst_region(comp.original, ours, theirs, CROP), grid,
            grid_words(comp.original, ours, theirs, grid, comp.learned.label, comp.reference.label))


def item_from(name: str, comp: cmp.Comparison, budget: int | None = None,
              made: tuple[Region, Region, str] | None = None) -> Item:
    """An item from a comparison already made (the Compare page's); `made`: its `crops`, if known."""
    zoom, grid, words = made or crops(comp)
    return Item(name=name, comparison=comp, budget=budget, zoom=zoom, grid=grid, grid_text=words)


@dataclass
class Report:
    items: list[Item]
    target: Target
    codecs: list[str]               # learned first, then the classical ones
    provenance: dict
    rd_rows: list[dict] = field(default_factory=list)


def provenance(learned: str, target: Target, command: str, codecs=None) -> dict:
    """How a report was made: enough to rebuild it and to trust it."""
    codec = (codecs or get_codec)(learned)
    card = getattr(codec, "card", {}) or {}
    return {"aecore": __version__, "python": platform.python_version(), "model": learned,
            "model_label": codec.label, "weights_sha256": card.get("sha256", ""),
            "training_steps": (card.get("training") or {}).get("steps"), "libraries": dict(library_versions()),
            "target": target.text, "rule": rule(target, learned), "command": command}


@functools.cache
def library_versions() -> dict[str, str]:
    """The installed versions of LIBRARIES, read once per process (the Compare page asks on every run)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def command_line(sources: list[str], target: Target, codecs: list[str], out: str = "report",
                 max_pixels: int | None = None) -> str:
    """The `python -m aecore report` line that rebuilds a report (sources: paths or 'sample:NAME')."""
    samples = [s.split(":", 1)[1] for s in sources if s.startswith("sample:")]
    files = [s for s in sources if not s.startswith("sample:")]
    parts = ["python", "-m", "aecore", "report", *files]
    if samples:
        parts += ["--samples", ",".join(samples)]
    parts += [*target.args, "--codecs", ",".join(codecs)]
    if max_pixels:
        parts += ["--max-pixels", str(max_pixels)]
    return shlex.join(parts + ["--out", out])


def build(images: dict[str, np.ndarray], learned: str, target: Target, classical=("jpeg",), command: str = "",
          with_rd: bool = True, codecs=None, progress=None) -> Report:
    """A report on `images` ({name: pixels}); `with_rd` adds the rate-distortion sweep for the chart."""
    if not images:
        raise ValueError("a report needs at least one image")
    classical = [c for c in dict.fromkeys(classical) if c != learned]
    if cmp.REFERENCE not in classical:
        classical.insert(0, cmp.REFERENCE)
    items = []
    for i, (name, pixels) in enumerate(images.items()):
        if progress:
            progress(i, len(images), f"coding {name}")
        items.append(make_item(name, pixels, learned, target, classical, codecs))
    return assemble(items, target, command, with_rd, codecs, progress)


def assemble(items: list[Item], target: Target, command: str = "", with_rd: bool = True, codecs=None,
             progress=None) -> Report:
    """A report of items already made (the app's), with the rate-distortion sweep of their codecs."""
    names = [r.codec for r in items[0].comparison.results]
    images = {item.name: item.comparison.original for item in items}
    rows = rd.sweep(images, rd.default_plan(names), progress=progress) if with_rd else []
    return Report(items=items, target=target, codecs=names, rd_rows=rows,
                  provenance=provenance(names[0], target, command, codecs))


# -- the numbers ----------------------------------------------------------------------------

def rows(report: Report) -> list[dict]:
    """One row per (image, codec): the coded file's quality, size and metrics, and the crops."""
    out = []
    for item in report.items:
        for r in item.comparison.results:
            out.append({"image": item.name, "codec": r.codec, "label": r.label, "kind": r.kind,
                        "quality": r.quality, **{k: r.metrics[k] for k in rd.METRICS},
                        "budget_bytes": "" if item.budget is None else item.budget,
                        "over_budget": int(r.over_budget), "zoom_y": item.zoom.y, "zoom_x": item.zoom.x,
                        "zoom_size": item.zoom.size, "grid_y": item.grid.y, "grid_x": item.grid.x,
                        "grid_size": item.grid.size})
    return out


def rd_rows(report: Report) -> list[dict]:
    """The sweep's rows without coding times (they differ from run to run; the rest does not)."""
    return [{k: v for k, v in row.items() if k not in ("encode_ms", "decode_ms")} for row in report.rd_rows]


def csv_text(table: list[dict]) -> str:
    buf = io.StringIO()
    rd.write_csv(table, buf)
    return buf.getvalue()


# -- the figure -----------------------------------------------------------------------------

def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def magnified(pixels: np.ndarray, side: int) -> Image.Image:
    """A crop enlarged by a whole factor (nearest neighbour, so each pixel stays a square) to fit `side`."""
    img = Image.fromarray(to_rgb(pixels))
    k = max(1, side // max(img.size))
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def _overview(pixels: np.ndarray, box: Region, side: int) -> Image.Image:
    """The whole picture scaled to fit `side`, the zoomed crop outlined."""
    shown = imaging.preview(to_rgb(pixels), side)
    img = Image.fromarray(shown)
    f = img.width / pixels.shape[1]
    draw = ImageDraw.Draw(img)
    draw.rectangle([box.x * f, box.y * f, (box.x + box.size) * f - 1, (box.y + box.size) * f - 1],
                   outline=(255, 60, 60), width=max(2, round(3 * side / PANEL)))
    return img


def short_name(result: cmp.CodecResult) -> str:
    """'hyperprior (learned)', 'JPEG': fits under a panel where a model card's label may not."""
    return f"{result.codec} (learned)" if result.kind == "learned" else result.label


def figure_labels(item: Item) -> list[tuple[str, str, str]]:
    """The three caption lines under each panel: name, size, quality."""
    h, w = item.comparison.original.shape[:2]
    z = item.zoom
    labels = [("Whole picture", f"{w} x {h} px", f"red box: the {z.size} px crop"),
              ("Original", "the reference", f"crop at x {z.x}, y {z.y}")]
    for r in item.comparison.results:
        psnr = "lossless" if math.isinf(r.metrics["psnr"]) else f"{r.metrics['psnr']:.2f} dB"
        labels.append((short_name(r), f"{cmp.format_bytes(r.num_bytes)} · {r.metrics['bpp']:.3f} bpp",
                       f"PSNR {psnr} · q {r.quality_text}"))
    return labels


def figure(item: Item, prov: dict, panel: int = PANEL) -> Image.Image:
    """The slide: the whole picture, then the same crop of the original and of every codec, labelled.

    `canvas.info["panels"]` lists each picture's box (x, y, width, height) on the figure.
    """
    comp = item.comparison
    gap, margin = panel // 16, panel // 12
    title_font, name_font, text_font, foot_font = (_font(panel * n // 384) for n in (34, 25, 22, 15))
    panels = [_overview(comp.original, item.zoom, panel), magnified(item.zoom.crop(comp.original), panel)]
    panels += [magnified(item.zoom.crop(r.decoded), panel) for r in comp.results]
    width = 2 * margin + len(panels) * panel + (len(panels) - 1) * gap
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title = _wrap(scratch, item.verdict, title_font, width - 2 * margin)
    foot = _wrap(scratch, footer(prov), foot_font, width - 2 * margin)
    line = lambda font: round(font.size * 1.3)  # noqa: E731
    top = margin + len(title) * line(title_font) + gap
    caption = line(name_font) + 2 * line(text_font) + gap
    height = top + panel + gap + caption + len(foot) * line(foot_font) + margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = margin
    for text in title:
        draw.text((margin, y), text, fill=(20, 22, 30), font=title_font)
        y += line(title_font)
    best, boxes = cmp.winner(comp.results, "psnr"), []
    for i, (img, (name, size, score)) in enumerate(zip(panels, figure_labels(item))):
        x = margin + i * (panel + gap)
        draw.rectangle([x, top, x + panel - 1, top + panel - 1], fill=(235, 236, 240))
        box = (x + (panel - img.width) // 2, top + (panel - img.height) // 2, img.width, img.height)
        canvas.paste(img, box[:2])
        boxes.append(box)
        ty = top + panel + gap // 2
        draw.text((x, ty), name, fill=(20, 22, 30), font=name_font)
        draw.text((x, ty + line(name_font)), size, fill=(70, 72, 85), font=text_font)
        won = i >= 2 and comp.results[i - 2].codec == best
        draw.text((x, ty + line(name_font) + line(text_font)), score,
                  fill=(23, 114, 51) if won else (70, 72, 85), font=text_font)
    y = height - margin - len(foot) * line(foot_font)
    for text in foot:
        draw.text((margin, y), text, fill=(110, 112, 125), font=foot_font)
        y += line(foot_font)
    canvas.info["panels"] = boxes
    return canvas


def footer(prov: dict) -> str:
    sha = prov["weights_sha256"][:12] or "unknown"
    return (f"aecore {prov['aecore']} · {prov['model']} weights sha256 {sha} · {prov['rule']} "
            f"Rebuild: {prov['command']}")


def figure_png(item: Item, prov: dict, panel: int = PANEL) -> bytes:
    """The figure as PNG bytes, with the verdict, labels, panel boxes and provenance as PNG text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", item.verdict)
    info.add_itxt("Labels", json.dumps(figure_labels(item), ensure_ascii=False))
    info.add_itxt("Description", footer(prov))
    img = figure(item, prov, panel)
    info.add_itxt("Panels", json.dumps(img.info["panels"]))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


# -- the HTML page --------------------------------------------------------------------------

def _template(name: str) -> str:
    return resources.files("aecore").joinpath("data", name).read_text(encoding="utf-8")


def _table(item: Item) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ("Codec", "Quality", "Size", "bpp", "PSNR (dB)", "MS-SSIM", "Blockiness"))
    body = []
    best = {k: cmp.winner(item.comparison.results, k) for k in ("bytes", "psnr", "ms_ssim", "blockiness")}
    for r in item.comparison.results:
        m = r.metrics
        cell = lambda key, text: f'<td class="{"win" if best.get(key) == r.codec else ""}">{text}</td>'  # noqa: E731
        body.append(f"<tr><td>{html.escape(r.label)}</td><td>{r.quality_text}</td>"
                    + cell("bytes", f"{r.num_bytes:,} B") + f"<td>{m['bpp']:.3f}</td>"
                    + cell("psnr", f"{m['psnr']:.2f}") + cell("ms_ssim", f"{m['ms_ssim']:.4f}")
                    + cell("blockiness", f"{m['blockiness']:.3f}") + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(index: int, item: Item, prov: dict) -> str:
    comp = item.comparison
    images = {"Original": comp.original, **{r.display_name: r.decoded for r in comp.results}}
    slider = slider_html(images, left=comp.learned.display_name, right=comp.reference.display_name, height=620)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in comp.notes)
    grid = item.grid
    crops = "".join(
        f'<figure><img src="{png_data_uri(np.asarray(magnified(grid.crop(p), 256)))}" alt="{html.escape(label)}">'
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
        for label, p in (("Original", comp.original), (comp.learned.label, comp.learned.decoded),
                         (comp.reference.label, comp.reference.decoded)))
    return (f'<section class="item" id="image-{index}"><h2>{html.escape(item.name)}</h2>'
            f'<p class="verdict">{html.escape(item.verdict)}</p>{notes}{_table(item)}'
            f'<iframe class="slider" title="Before/after slider: {html.escape(item.name)}" '
            f'srcdoc="{html.escape(slider, quote=True)}"></iframe>'
            f'<h3>Zoomed in where the difference shows</h3>'
            f'<img class="figure" src="{png_data_uri(np.asarray(figure(item, prov)))}" '
            f'alt="{html.escape(item.verdict)}">'
            f"<h3>JPEG's 8×8 block grid</h3><p>{html.escape(item.grid_text)}</p>"
            f'<div class="crops">{crops}</div></section>')


def chart_html(report: Report) -> str:
    """The rate-distortion chart with Plotly's JavaScript inline (no network needed)."""
    if not report.rd_rows:
        return "<p>No rate-distortion sweep in this report.</p>"
    labels = {name: get_codec(name).label for name in report.codecs}
    averaged = len(report.items) > 1
    point = None
    if not averaged:
        r = report.items[0].learned
        point = {"label": r.label, "quality": r.quality, "bytes": r.num_bytes, "bpp": r.metrics["bpp"],
                 "psnr": r.metrics["psnr"], "ms_ssim": r.metrics["ms_ssim"]}
    fig = rd_chart.figure(rd.average(report.rd_rows) if averaged else report.rd_rows, averaged, point,
                          label=lambda c: labels.get(c, c))
    return fig.to_html(include_plotlyjs=True, full_html=False, div_id="rd-chart",
                       config={"displaylogo": False, "displayModeBar": False})


def html_report(report: Report) -> str:
    """One HTML file holding everything: images as PNG data URIs, the slider, the chart's script."""
    prov = report.provenance
    libs = ", ".join(f"{k} {v}" for k, v in prov["libraries"].items())
    made = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in (
        ("Model", html.escape(f"{prov['model_label']} ({prov['model']}, "
                              f"{prov['training_steps'] or '?'} training steps)")),
        ("Weights SHA-256", f"<code>{html.escape(prov['weights_sha256'])}</code>"),
        ("Matched-size rule", html.escape(prov["rule"])),
        ("Software", html.escape(f"aecore {prov['aecore']}, Python {prov['python']}, {libs}")),
        ("Rebuild with", f"<code>{html.escape(prov['command'])}</code>")))
    toc = "".join(f'<li><a href="#image-{i}">{html.escape(it.name)}</a>: {html.escape(it.verdict)}</li>'
                  for i, it in enumerate(report.items))
    body = "".join(_section(i, it, prov) for i, it in enumerate(report.items))
    return (_template("report.html")
            .replace("__TITLE__", html.escape(f"{prov['model_label']} vs JPEG at {report.target.text}"))
            .replace("__TOC__", toc)
            .replace("__MADE__", made)
            .replace("__ITEMS__", body)
            .replace("__CHART__", chart_html(report)))


# -- writing --------------------------------------------------------------------------------

def slug(name: str) -> str:
    """A file-name-safe stem: 'My photo.png' -> 'my_photo'."""
    stem = Path(name).stem if "." in name else name
    return re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_") or "image"


def write(report: Report, out) -> list[Path]:
    """Writes every file of the report into `out` (created); returns the paths, in writing order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for item in report.items:
        stem = slug(item.name)
        files[f"{stem}.png"] = figure_png(item, report.provenance)
        for r in item.comparison.results:
            files[f"{stem}.{r.codec}.{r.extension}"] = r.data
    files["report.csv"] = csv_text(rows(report)).encode()
    if report.rd_rows:
        files["rd.csv"] = csv_text(rd_rows(report)).encode()
    files["report.html"] = html_report(report).encode()
    paths = []
    for name, data in files.items():
        path = out / name
        atomic_write(path, lambda tmp, data=data: Path(tmp).write_bytes(data))
        paths.append(path)
    return paths
