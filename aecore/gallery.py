"""The gallery: a walk through pictures, each coded at one file-size budget, for a presentation.

    target = target_for("25 KB")                  # or target_for(BPP, bpp=0.25)
    index = step(index, +1, len(pictures))        # next, wrapping round
    item = report.make_item(name, pixels, "hyperprior", target)
    for label, value, detail in key_numbers(item): ...

The Gallery page is a thin shell over this and `aecore.report` (which codes, zooms and
exports); the rules a presenter relies on (which budgets, how the walk wraps, which
numbers are the key ones and how they are worded) live here, testable without Streamlit.
"""
from __future__ import annotations

import math

from .compare import format_bytes
from .report import Item, Target

BPP = "Bits per pixel"
BUDGETS = {"10 KB": Target(budget=10_000), "25 KB": Target(budget=25_000), "50 KB": Target(budget=50_000)}
CHOICES = [*BUDGETS, BPP]
DEFAULT_CHOICE = "25 KB"
DEFAULT_BPP = 0.25


def target_for(choice: str, bpp: float = DEFAULT_BPP) -> Target:
    """The target of a budget choice ("10 KB", "25 KB", "50 KB", or BPP with `bpp`)."""
    if choice == BPP:
        return Target(bpp=float(bpp))
    if choice not in BUDGETS:
        raise ValueError(f"unknown budget {choice!r}; choose one of {', '.join(CHOICES)}")
    return BUDGETS[choice]


def step(index: int, delta: int, count: int) -> int:
    """The picture `delta` places on from `index`, wrapping round (the last one's next is the first)."""
    if count < 1:
        raise ValueError("the gallery has no pictures")
    return (index + delta) % count


def key_numbers(item: Item) -> list[tuple[str, str, str]]:
    """(label, value, detail) of the numbers a room should read: size, PSNR, MS-SSIM, block grid."""
    ours, jpeg = item.learned, item.jpeg
    a, b = ours.metrics, jpeg.metrics
    gain = a["psnr"] - b["psnr"]
    gain_text = "" if not math.isfinite(gain) else f"{gain:+.1f} dB against JPEG's {b['psnr']:.1f} dB"
    return [
        ("File size", format_bytes(ours.num_bytes), f"JPEG {format_bytes(jpeg.num_bytes)} · {a['bpp']:.2f} bpp"),
        ("PSNR", "lossless" if math.isinf(a["psnr"]) else f"{a['psnr']:.1f} dB", gain_text),
        ("MS-SSIM", f"{a['ms_ssim']:.3f}", f"JPEG {b['ms_ssim']:.3f} (1 = identical)"),
        ("Block grid", f"{a['blockiness']:.2f}", f"JPEG {b['blockiness']:.2f} (1 = none)"),
    ]


def headline(item: Item) -> str:
    """The verdict in a few words for the back of the room: 'Learned: 2.8 dB better than JPEG at 25 KB'."""
    gain = item.learned.metrics["psnr"] - item.jpeg.metrics["psnr"]
    size = format_bytes(item.learned.num_bytes)
    if not math.isfinite(gain) or abs(gain) < 0.05:
        return f"Learned and JPEG level at {size}"
    return f"Learned: {abs(gain):.1f} dB {'better' if gain > 0 else 'worse'} than JPEG at {size}"
