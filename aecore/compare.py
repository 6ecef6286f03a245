"""One comparison: a learned codec beside JPEG (and optionally one more classical codec).

    from aecore.compare import compare, verdict
    result = compare(image, "hyperprior", quality=4.0)             # JPEG matched to the same size
    print(verdict(result.results))   # "At 14.2 KB, the autoencoder is +3.1 dB PSNR over JPEG (...)"

The Compare page is a thin shell over this module; anything it shows can be computed
here from plain Python. Two modes:

- "same size": the JPEG file is the largest one (quality found by bisection) that is not
  larger than the learned stream, so the learned codec never wins by spending more bits.
  If even JPEG quality 1 is larger, JPEG is shown at quality 1 and that fact is reported.
- "jpeg quality": JPEG at a fixed quality, whatever its size.

An extra classical codec (WebP, AVIF, JPEG 2000, JPEG XL, HEIC) is always matched to the learned stream's
size, the same way as JPEG in "same size" mode. Sizes are printed in units of 1000 bytes.

`compare_sides` is the general form: each side of the slider (and an optional third column)
is any codec, or the original, at a quality of its own, at the same size as the other side,
or within a target size; `compare` is its default setting (learned left, JPEG right).
"""
from __future__ import annotations

from collections import OrderedDict
import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
import threading

import numpy as np

from .codecs import Codec, get_codec, with_effort
from .imaging import shrink_to_pixels
from .measure import measure
from .metrics import STRUCTURAL, ssimulacra2, structural_scores
from .target import BudgetError, fit

SAME_SIZE = "same size"
JPEG_QUALITY = "jpeg quality"
MODES = (SAME_SIZE, JPEG_QUALITY)
REFERENCE = "jpeg"  # the project's reference codec (OpenCV JPEG)
# How a side's quality is chosen (`Side.setting`), and the side that shows the uncoded image.
QUALITY, SAME_AS_OTHER, TARGET_SIZE = "quality", "same size as the other side", "target size"
SETTINGS = (QUALITY, SAME_AS_OTHER, TARGET_SIZE)
ORIGINAL = "original"
# Above this many pixels a photo is large: a 12 MP photo takes several seconds per learned encode
# on 2 cores. The app shows a large photo's result from a copy first (`shrink_to_pixels`), then
# codes it in full, or codes a copy of this many pixels alone where asked.
LARGE_PIXELS = 4_000_000
# A large photo coded in full is shown first from a copy of at most this many pixels, in about a second.
PREVIEW_PIXELS = 1_000_000
# SSIMULACRA 2 is scored on a copy of at most this many pixels (both images scaled alike):
# it takes about 0.7 s at 768x512 and 20 s at 12 MP on one core, per codec.
SSIMULACRA2_PIXELS = 1_000_000

# Rows of the comparison table, in display order: (metrics key, label, which value wins).
# "near 1" is for blockiness, where 1 means no visible 8x8 grid (a photo's own texture).
ROWS: tuple[tuple[str, str, str], ...] = (
    ("bytes", "Size (bytes)", "lower"),
    ("bpp", "Bits per pixel", "lower"),
    ("ratio", "Compression ratio", "higher"),
    ("psnr", "PSNR (dB)", "higher"),
    ("ms_ssim", "MS-SSIM", "higher"),
    ("ms_ssim_db", "MS-SSIM (dB)", "higher"),
    ("ssimulacra2", "SSIMULACRA 2 (100 = identical)", "higher"),
    ("ssim", "SSIM", "higher"),
    ("blockiness", "Blockiness (1 = no grid)", "near 1"),
    ("encode_ms", "Encode (ms)", "lower"),
    ("decode_ms", "Decode (ms)", "lower"),
)
BETTER = {key: better for key, _, better in ROWS}


@dataclass
class CodecResult:
    """One codec's file for the image, what it decodes to, and how good that is."""

    codec: str                 # registry name: "hyperprior", "jpeg", "webp", ...
    label: str                 # display name: "JPEG", the weights card's label, ...
    kind: str                  # "learned" or "classical"
    quality: float
    data: bytes                # the whole file, header included
    decoded: np.ndarray        # uint8, same shape as the original
    metrics: dict              # aecore.metrics.evaluate(...) plus encode_ms, decode_ms
    encode_ms: float
    decode_ms: float
    extension: str = ""        # file suffix without the dot
    mime: str = "application/octet-stream"
    over_budget: bool = False  # matched to a size it could not reach even at its lowest quality
    note: str = ""             # how the quality was chosen, in words

    @property
    def num_bytes(self) -> int:
        return len(self.data)

    @property
    def quality_text(self) -> str:
        return f"{self.quality:.2f}".rstrip("0").rstrip(".") if self.kind == "learned" else f"{self.quality:g}"

    @property
    def display_name(self) -> str:
        """"JPEG q 42 · 14.1 KB": the label with its operating point, for pickers and captions."""
        return f"{self.label} q {self.quality_text} · {format_bytes(self.num_bytes)}"


@dataclass
class Comparison:
    """Every codec's result for one image, learned first, then JPEG, then the extra codec."""

    original: np.ndarray
    results: list[CodecResult]
    mode: str
    budget: int | None = None  # the byte count the matched codecs had to fit in
    notes: list[str] = field(default_factory=list)
    # What the slider's two sides show: a result, or None for the original.
    left: CodecResult | None = None
    right: CodecResult | None = None

    def get(self, codec: str) -> CodecResult | None:
        return next((r for r in self.results if r.codec == codec), None)

    @property
    def learned(self) -> CodecResult | None:
        return next((r for r in self.results if r.kind == "learned"), None)

    @property
    def reference(self) -> CodecResult | None:
        return self.get(REFERENCE)


def compare(image: np.ndarray, learned: Codec | str | None, quality: float | None = None,
            mode: str = SAME_SIZE, jpeg_quality: int = 75,
            extra: Codec | str | None = None, codecs=None) -> Comparison:
    """Codes `image` with the learned codec, with JPEG and optionally with `extra`.

    `learned` may be None (no learned weights installed): JPEG is then coded at
    `jpeg_quality` and `extra` is matched to the JPEG file's size. `quality` defaults to
    the learned codec's default. `codecs(name) -> Codec` resolves names (the app passes
    its cached loader); the default is `aecore.codecs.get_codec`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(map(repr, MODES))}")
    jpeg = Side(REFERENCE, SAME_AS_OTHER) if learned is not None and mode == SAME_SIZE else \
        Side(REFERENCE, QUALITY, jpeg_quality)
    third = None if extra is None else Side(extra, SAME_AS_OTHER)
    if learned is None:  # JPEG on the left; the extra codec, at its size, on the right
        return compare_sides(image, jpeg, third or Side(ORIGINAL), codecs=codecs)
    return compare_sides(image, Side(learned, QUALITY, quality), jpeg, third, codecs=codecs)


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a codec (or ORIGINAL) and how its quality is chosen.

    `setting` QUALITY uses `quality` (None: the codec's default); SAME_AS_OTHER takes the
    largest file no larger than the other side's; TARGET_SIZE the largest within
    `target_kb` (1000 bytes each). `effort` "balanced" or "best" refines a learned side's latents.
    """

    codec: Codec | str
    setting: str = QUALITY
    quality: float | None = None
    target_kb: float | None = None
    effort: str = "fast"  # a learned codec's encode effort (`aecore.refine`); classical: fast only


class ResultCache:
    """Classical codecs' work per (image, codec, quality), kept between comparisons, so that moving
    a slider back to a quality already seen, swapping the sides or matching the same size again
    encodes nothing: the measured results `code` made (file, decode, metrics, timings) and the
    files a size search encoded. Learned results are not kept (their weights can change under
    the same name), but a learned codec's analysis transform output is, per image and weights
    (`analysis`, for `LearnedCodec.reusing`): it does not depend on the quality. Images are keyed
    by a hash of their pixels; the least recently used entries go once the pixels and latents
    held pass `max_bytes`. One per user session: nothing in it is shared with another session. Its
    methods take a lock: a superseded run of the session's page may still be finishing beside the new one."""

    def __init__(self, max_bytes: int = 256_000_000):
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._results: OrderedDict = OrderedDict()  # (image, codec, quality) -> CodecResult
        self._files: OrderedDict = OrderedDict()    # (image, codec, quality) -> bytes (size searches)
        self._analyses: OrderedDict = OrderedDict()  # (image, codec, weights hash) -> {"analysis", "seconds"}

    @staticmethod
    def image_key(image: np.ndarray) -> str:
        digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16)
        digest.update(repr((image.shape, image.dtype.str)).encode())
        return digest.hexdigest()

    def keeps(self, codec) -> bool:
        return codec.kind == "classical" and getattr(codec, "effort", "fast") == "fast"

    def result(self, key: tuple) -> CodecResult | None:
        return self._touch(self._results, key)

    def add_result(self, key: tuple, result: CodecResult) -> None:
        with self._lock:
            self._results[key] = result
            self.add_file(key, result.data)

    def file(self, key: tuple) -> bytes | None:
        return self._touch(self._files, key)

    def _touch(self, store: OrderedDict, key: tuple):
        """The entry (None when absent), now the most recently used."""
        with self._lock:
            if key in store:
                store.move_to_end(key)
            return store.get(key)

    def add_file(self, key: tuple, data: bytes) -> None:
        with self._lock:
            self._files[key] = data
            self.trim()

    def analysis(self, image: np.ndarray, codec) -> dict:
        """The store `codec.model.compress` fills with this image's analysis output (empty at first)."""
        key = (self.image_key(image), codec.name, getattr(codec, "hash", b""))
        with self._lock:
            kept = self._touch(self._analyses, key)
            if kept is None:  # filled by the encode after this; compare_sides trims once it is done
                kept = self._analyses[key] = {}
            return kept

    @staticmethod
    def _bytes(entry) -> int:
        """What one entry holds: a result's file and decoded pixels, a file, or an analysis."""
        if isinstance(entry, CodecResult):
            return entry.decoded.nbytes + len(entry.data)
        if isinstance(entry, dict):
            return entry["analysis"].nbytes if "analysis" in entry else 0
        return len(entry)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(self._bytes(e) for store in (self._results, self._files, self._analyses)
                       for e in store.values())

    def trim(self) -> None:
        """Drops the least recently used entries until what is held fits `max_bytes` (compare_sides
        calls it once the analyses a comparison filled in count)."""
        with self._lock:
            held = self.held_bytes()
            for store in (self._results, self._files, self._analyses):
                while store and held > self.max_bytes:
                    held -= self._bytes(store.popitem(last=False)[1])


class _Remembered:
    """A classical codec whose encodes of one image go through a ResultCache (for `fit`)."""

    def __init__(self, codec: Codec, cache: ResultCache, image_key: str):
        self._codec, self._cache, self._image_key = codec, cache, image_key

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        key = (self._image_key, self._codec.name, self._codec.check_quality(quality))
        data = self._cache.file(key)
        if data is None:
            data = self._codec.encode(image, quality)
            self._cache.add_file(key, data)
        return data


def compare_sides(image: np.ndarray, left: Side, right: Side, extra: Side | None = None,
                  codecs=None, perceptual: bool = True, starts: dict | None = None,
                  refining: dict | None = None, cache: ResultCache | None = None,
                  structural: bool = True) -> Comparison:
    """Codes each side as it asks; a side set to SAME_AS_OTHER is matched to the other side's file
    (the third column's "other side" is the left one, or the right if the left is the original).
    `perceptual=False` leaves SSIMULACRA 2 unscored (NaN) and `structural=False` SSIM and MS-SSIM
    too, for `fill_scores` to fill later: the Compare page shows the slider first and scores after. `starts` ({codec name: quality},
    such as the last comparison's) is where each size search starts (`target.fit`). `refining`
    ({presets, progress, cancel}, see `LearnedCodec.at_effort`) goes to each refining side.
    `cache` (a ResultCache, kept by the caller between comparisons) keeps the classical sides' results
    and the learned sides' analysis transform outputs (a new quality codes from them)."""
    resolve = codecs or get_codec
    kept = None if cache is None else (cache, ResultCache.image_key(image))
    sides = {"left": left, "right": right, **({"extra": extra} if extra is not None else {})}
    for where, side in sides.items():
        if side.setting not in SETTINGS:
            raise ValueError(f"{where} side: unknown setting {side.setting!r}; use one of "
                             f"{', '.join(map(repr, SETTINGS))}")
        if side.setting == TARGET_SIZE and not (side.target_kb and side.target_kb > 0):
            raise ValueError(f"{where} side: a target size must be a positive number of KB")
    if extra is not None and extra.codec == ORIGINAL:
        raise ValueError("the third column shows a codec; the original is on the slider already")
    done: dict[str, CodecResult | None] = {}

    def run(where: str) -> None:
        side = sides[where]
        if side.codec == ORIGINAL:
            done[where] = None
            return
        codec = resolve(side.codec) if isinstance(side.codec, str) else side.codec
        if side.effort != "fast":  # a classical codec refuses (CodecError)
            codec = with_effort(codec, side.effort, **(refining or {}))
        elif kept is not None and codec.kind == "learned":  # a new quality starts from the image's analysis
            codec = codec.reusing(kept[0])
        if side.setting == QUALITY:
            q = codec.default_quality if side.quality is None else side.quality
            done[where] = code(codec, image, q, note="" if codec.kind == "learned" else f"fixed quality {q:g}",
                               perceptual=perceptual, kept=kept, structural=structural)
        elif side.setting == TARGET_SIZE:
            done[where] = matched(codec, image, int(round(side.target_kb * 1000)), perceptual=perceptual,
                                  start=(starts or {}).get(codec.name), kept=kept, structural=structural)
        else:
            other = {"left": "right", "right": "left"}.get(where) or ("left" if left.codec != ORIGINAL else "right")
            if sides[other].codec == ORIGINAL or sides[other].setting == SAME_AS_OTHER:
                raise ValueError(f"{where} side: 'same size as the other side' needs the other side to be coded "
                                 "at a quality or a target size")
            done[where] = matched(codec, image, done[other].num_bytes, perceptual=perceptual,
                                  start=(starts or {}).get(codec.name), kept=kept, structural=structural)

    for where in sorted(sides, key=lambda w: sides[w].setting == SAME_AS_OTHER):  # fixed sides first
        run(where)
    if cache is not None:  # the analyses filled in during the coding count now
        cache.trim()
    results = [r for r in (done["left"], done["right"], done.get("extra")) if r is not None]
    # The size the others are measured against: the first side coded on its own terms.
    budget = next((done[w].num_bytes for w in ("left", "right")
                   if sides[w].setting != SAME_AS_OTHER and done[w] is not None), None)
    ref_side = next((w for w in ("left", "right", "extra") if w in sides and sides[w].codec == REFERENCE), None)
    mode = SAME_SIZE if ref_side is not None and sides[ref_side].setting != QUALITY else JPEG_QUALITY
    return Comparison(original=image, results=results, mode=mode, budget=budget,
                      notes=[r.note for r in results if r.over_budget], left=done["left"], right=done["right"])


def code(codec: Codec, image: np.ndarray, quality: float, note: str = "", data: bytes | None = None,
         perceptual: bool = True, kept: tuple | None = None, structural: bool = True) -> CodecResult:
    """Encodes (timed), decodes (timed) and measures one file.

    `data` is an already encoded file at `quality` (from a size search); it is encoded
    once more anyway, so the reported encode time is that of one plain encode.
    `perceptual=False` leaves SSIMULACRA 2 NaN, `structural=False` SSIM and MS-SSIM (`fill_scores`).
    `kept` (a ResultCache and the image's key) returns a classical codec's earlier result,
    measured once: a copy, so a caller's note or score never reaches another comparison.
    """
    key = None
    if kept is not None and kept[0].keeps(codec):
        key = (kept[1], codec.name, codec.check_quality(quality))
        hit = kept[0].result(key)
        if hit is not None:
            _fill(image, hit, perceptual, structural)  # kept scored: a later hit needs nothing more
            return dataclasses.replace(hit, metrics=dict(hit.metrics), note=note, over_budget=False)
    m = measure(codec, image, quality, data=data, perceptual=False, structural=structural)
    data, decoded, encode_ms, decode_ms = m.data, m.decoded, m.encode_ms, m.decode_ms
    metrics = {**m.metrics, "encode_ms": encode_ms, "decode_ms": decode_ms,
               "ssimulacra2": scaled_ssimulacra2(image, decoded) if perceptual else math.nan}
    result = CodecResult(codec=codec.name, label=codec.label or codec.name, kind=codec.kind, quality=quality,
                         data=data, decoded=decoded, metrics=metrics, encode_ms=encode_ms, decode_ms=decode_ms,
                         extension=codec.extension, mime=codec.mime, note=note)
    if key is not None:
        kept[0].add_result(key, dataclasses.replace(result, metrics=dict(metrics)))
    return result


def matched(codec: Codec, image: np.ndarray, budget: int, perceptual: bool = True,
            start: float | None = None, kept: tuple | None = None, structural: bool = True) -> CodecResult:
    """`codec` at its highest quality whose file fits in `budget` bytes.

    When even the lowest quality is larger, that lowest quality is used and the result
    says so (`over_budget`, `note`): a comparison that quietly gave one side more bits
    would not be fair. `kept`: see `code` (the search's files are kept too).
    """
    searched = _Remembered(codec, *kept) if kept is not None and kept[0].keeps(codec) else codec
    try:
        quality, data = fit(searched, image, budget, start=start)
    except BudgetError:
        pass
    else:
        return code(codec, image, quality, note=f"quality {quality:g}: the largest file within "
                    f"{format_bytes(budget)}", data=data, perceptual=perceptual, kept=kept, structural=structural)
    lowest = codec.quality_range[0]
    result = code(codec, image, lowest, perceptual=perceptual, kept=kept, structural=structural)
    result.over_budget = True
    result.note = (f"Even {codec.label} at quality {lowest:g} needs {format_bytes(result.num_bytes)}, more than "
                   f"the {format_bytes(budget)} budget; it is shown at quality {lowest:g}, with the larger file.")
    return result


def winner(results: list[CodecResult], metric: str) -> str | None:
    """The codec name with the best `metric` value, or None when the best is shared or unknown.

    Which value is best comes from `BETTER` (higher PSNR, lower bpp, blockiness nearest 1).
    """
    better = BETTER.get(metric, "higher")
    scored = []
    for r in results:
        value = r.metrics.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if better == "higher":
            score = value
        elif better == "lower":
            score = -value
        else:  # nearest 1, measured as a ratio so 0.8 and 1.25 are equally far
            score = -abs(math.log(value)) if value > 0 else -math.inf
        scored.append((score, r.codec))
    if not scored:
        return None
    best = max(s for s, _ in scored)
    names = [name for s, name in scored if s == best]
    return names[0] if len(names) == 1 else None


def verdict(results: list[CodecResult] | Comparison) -> str:
    """One line for the headline, e.g.
    "At 14.2 KB, the autoencoder is +3.1 dB PSNR over JPEG (MS-SSIM 0.962 vs 0.931)."

    The subject is the learned result (else the first one), measured against JPEG (else the
    next result). Every further coded side gets a clause of its own, so a third codec that
    beats the subject is named in the headline: "...; 0.8 dB behind JPEG 2000 at 134.8 KB."
    """
    if isinstance(results, Comparison):
        results = results.results
    if not results:
        return "Nothing was coded."
    subject = next((r for r in results if r.kind == "learned"), results[0])
    ref = next((r for r in results if r.codec == REFERENCE and r is not subject),
               next((r for r in results if r is not subject), None))
    # MS-SSIM is NaN for images under 11 px a side: then its clause is left out.
    if ref is None:
        ms = "" if math.isnan(subject.metrics["ms_ssim"]) else f", MS-SSIM {subject.metrics['ms_ssim']:.3f}"
        return (f"{subject.label} at quality {subject.quality_text}: {format_bytes(subject.num_bytes)}, "
                f"{format_db(subject.metrics['psnr'])} PSNR{ms}.")
    who = "the autoencoder" if subject.kind == "learned" else f"{subject.label} quality {subject.quality_text}"
    gap = _psnr_gap(subject.metrics["psnr"], ref.metrics["psnr"], ref.label, " PSNR")
    pair = (subject.metrics["ms_ssim"], ref.metrics["ms_ssim"])
    ms = f" (MS-SSIM {pair[0]:.3f} vs {pair[1]:.3f})" if not any(map(math.isnan, pair)) else ""
    others = "".join(f"; {_psnr_gap(subject.metrics['psnr'], r.metrics['psnr'], r.label)} at "
                     f"{format_bytes(r.num_bytes)}" for r in results if r is not subject and r is not ref)
    size = format_bytes(subject.num_bytes)
    if ref.over_budget:
        return (f"At {size}, {who} is {gap}{ms}, and {ref.label} needed "
                f"{format_bytes(ref.num_bytes)} even at quality {ref.quality_text}{others}.")
    if abs(ref.num_bytes - subject.num_bytes) <= 0.02 * subject.num_bytes:
        return f"At {size}, {who} is {gap}{ms}{others}."
    change = (subject.num_bytes - ref.num_bytes) / ref.num_bytes * 100
    smaller = f"{abs(change):.0f}% {'smaller' if change < 0 else 'larger'}"
    return (f"At {size} ({smaller} than {ref.label} quality {ref.quality_text}'s {format_bytes(ref.num_bytes)}), "
            f"{who} is {gap}{ms}{others}.")


def _psnr_gap(ours: float, theirs: float, name: str, unit: str = "") -> str:
    """"+3.1 dB PSNR over JPEG", "0.8 dB behind JPEG 2000", "level with WebP" (within 0.05 dB)."""
    gain = ours - theirs
    if math.isinf(ours) or math.isinf(theirs):  # an exact decode has infinite PSNR
        return (f"lossless, as is {name}" if ours == theirs else f"lossless, ahead of {name}" if math.isinf(ours)
                else f"behind {name}, which is lossless here")
    if math.isnan(gain):
        return f"not comparable with {name} on PSNR"
    if gain >= 0.05:
        return f"+{format_db(gain)}{unit} over {name}"
    if gain <= -0.05:
        return f"{format_db(-gain)}{unit} behind {name}"
    return f"level with {name}" + (" on PSNR" if unit else "")


def scaled_ssimulacra2(image: np.ndarray, decoded: np.ndarray) -> float:
    """SSIMULACRA 2 of copies of at most SSIMULACRA2_PIXELS (as they are when smaller): on a
    12 MP photo the full-size score would cost minutes and gigabytes."""
    return ssimulacra2(*(shrink_to_pixels(x, SSIMULACRA2_PIXELS) for x in (image, decoded)))


def score_perceptual(comp: Comparison) -> list[float]:
    """Each result's SSIMULACRA 2 (on the capped copy), scoring those still NaN in place.

    The one metric that costs more than the coding (an import of scipy and about 0.7 s per
    megapixel), so a comparison made with `perceptual=False` is scored only where shown.
    """
    return [fill_scores(comp, i)["ssimulacra2"] for i in range(len(comp.results))]


def fill_scores(comp: Comparison, index: int, perceptual: bool = True) -> dict:
    """The metrics of `comp.results[index]`, with those a comparison made with `structural=False`
    left NaN (SSIM, MS-SSIM) scored now, and SSIMULACRA 2 too unless `perceptual=False`."""
    r = comp.results[index]
    _fill(comp.original, r, perceptual, structural=True)
    return r.metrics


def _fill(image: np.ndarray, r: CodecResult, perceptual: bool, structural: bool) -> None:
    """Scores in place what `r` left NaN of what is asked for (a tiny image's MS-SSIM stays NaN)."""
    if structural and any(math.isnan(r.metrics[k]) for k in STRUCTURAL):
        r.metrics.update(structural_scores(image, r.decoded))
    if perceptual and math.isnan(r.metrics["ssimulacra2"]):
        r.metrics["ssimulacra2"] = scaled_ssimulacra2(image, r.decoded)


def format_bytes(n: int) -> str:
    """850 B, 14.2 KB, 3.10 MB (powers of 1000, as file sizes in this project are quoted)."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} KB"
    return f"{n / 1e6:.2f} MB"


def format_db(value: float) -> str:
    return "∞ dB" if math.isinf(value) else f"{value:.1f} dB" if abs(value) >= 0.05 else f"{value:.2f} dB"


def refines(sides) -> bool:
    """Whether any of these sides codes at a refining effort (seconds to minutes, not milliseconds)."""
    return any(s is not None and s.effort != "fast" for s in sides)
