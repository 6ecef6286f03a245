"""Many files in one command: compress or decompress a list of files and folders.

    tasks = plan(["photos/", "extra.jpg"], "out/", suffix=".aec")      # folder trees keep their paths
    records = run(tasks, compress_file, {"codec": "hyperprior", "target_size": 25000}, workers=2)
    summary(records)   # files, bytes in and out, mean bpp, mean PSNR

Files are coded in a pool of worker processes (each loads the model once, on its first
file); a file that fails is recorded with its one-line error and the rest go on. Outputs
are written atomically, so after an interrupted run `skip_existing` skips exactly the
files already done. The command line and single-file use run the same `compress_file`.
`comparison_zip` codes several images as the Compare page codes one, into one zip.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
import math
import multiprocessing
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .io import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import numpy as np

# What a failing file may raise: reported against that file, never stopping the others.
_FILE_ERRORS = (ValueError, OSError, MemoryError)


def plan(inputs: list[str], out_dir: str, suffix: str, wanted: set[str] | None = None) -> list[tuple[str, str]]:
    """(source, destination) pairs: files as given, folders walked (sorted) for `wanted`
    suffixes; each destination is `out_dir`/its path below the folder named, with `suffix`."""
    wanted = IMAGE_SUFFIXES if wanted is None else wanted
    out, tasks = Path(out_dir), []
    for given in inputs:
        root = Path(given)
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted
                           and not p.name.startswith("."))
            tasks += [(str(p), str((out / p.relative_to(root)).with_suffix(suffix))) for p in files]
        else:  # a missing file is reported as that file's failure
            tasks.append((given, str((out / root.name).with_suffix(suffix))))
    return tasks


# Other spellings of the codecs' file suffixes.
_SUFFIX_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "heif": "heic", "j2k": "jp2", "jpf": "jp2"}
# What decompress writes, by the output's suffix (Pillow format names): formats that add no loss
# of their own; a lossy suffix is refused rather than coding the decode a second time.
DECODED_FORMATS = {"png": "PNG", "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP", "ppm": "PPM", "pgm": "PPM"}


def _suffix(path: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return _SUFFIX_ALIASES.get(suffix, suffix)


def output_codec(codec: str | None, output: str) -> tuple[str, str | None]:
    """(codec name, a line saying why or None): the codec that writes `output`: `codec`, else
    the classical one its suffix names, else the default learned model. ValueError when the
    suffix names another format than that codec writes (its bytes would be mislabelled)."""
    from .codecs import get_codec
    from .codecs.base import CLASSICAL
    from .weights import DEFAULT_MODEL

    suffix, said = _suffix(output), None
    if codec is None:
        by_suffix = {cls.extension: name for name, cls in CLASSICAL.items() if cls.is_supported()}
        if suffix in by_suffix:
            codec = by_suffix[suffix]
            said = f"{output}: wrote {codec}, the format its extension names (--codec picks another)"
    codec = get_codec(codec or DEFAULT_MODEL)
    if suffix and suffix != codec.extension:
        raise ValueError(f"{output}: {codec.name} writes .{codec.extension} files, not .{suffix}; "
                         f"name the output .{codec.extension} or pick the codec with --codec")
    return codec.name, said


def decoded_format(output: str) -> str:
    """The Pillow format decompress writes to `output` (PNG when it has no suffix); ValueError for others."""
    suffix = _suffix(output)
    if suffix and suffix not in DECODED_FORMATS:
        raise ValueError(f"{output}: decompress writes a lossless image (.png, .tif, .bmp, .ppm), not .{suffix}, "
                         f"which would add losses of its own; to make a .{suffix}, compress the original")
    return DECODED_FORMATS.get(suffix, "PNG")


def compress_file(source: str, output: str, options: dict, progress=None) -> dict:
    """Codes one image to `output` at options' quality or within its target size, at options'
    `effort` (default fast); returns the record. `progress(done, total)` follows a refinement.

    The source's metadata goes into the file unless `options["strip"]` (or the format carries
    none: AVIF, JPEG 2000, JPEG XL, HEIC). A target size is that of the whole file, metadata
    included; `bytes` and `bpp` count the whole file, `image_bytes` and `metadata_bytes` its parts.
    """
    from .codecs import get_codec, with_effort
    from .compare import SSIMULACRA2_PIXELS, scaled_ssimulacra2
    from .io import atomic_write, load_image
    from .measure import measure
    from .metadata import STRIPPED, carry, carry_cost, held, left_out
    from .metrics import rate
    from .target import bpp_budget, fit
    from .weights import DEFAULT_MODEL

    # The image is read on a thread while the codec loads (a learned one imports torch): PNG
    # decoding releases the GIL, so a 12 MP photo's read takes no time of its own on two cores.
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(load_image, source, name=source)  # messages name the path as given
        try:
            plain = get_codec(options.get("codec") or DEFAULT_MODEL)
        finally:
            loaded = reading.result()  # a file that cannot be read is the error reported, as before
    effort = options.get("effort") or "fast"
    codec = with_effort(plain, effort, **({"progress": progress} if progress and effort != "fast" else {}))
    notes = list(loaded.notes)
    wanted = STRIPPED if options.get("strip") else loaded.metadata
    sized = options.get("target_size") is not None or options.get("target_bpp") is not None
    # The container's cost (any effort) from a tiny probe file, needed only to fit a size: at
    # a quality, what the format keeps is known from the file itself once it is coded.
    added, kept = carry_cost(plain, wanted) if wanted and sized else (0, STRIPPED)
    data = None
    if options.get("target_size") is not None:
        quality, data = fit(codec, loaded.pixels, options["target_size"], overhead=added)
    elif options.get("target_bpp") is not None:
        quality, data = fit(codec, loaded.pixels, bpp_budget(options["target_bpp"], loaded.height, loaded.width),
                            overhead=added)
    else:
        quality = codec.default_quality if options.get("quality") is None else options["quality"]
    m = measure(codec, loaded.pixels, quality, data=data, perceptual=False)
    image_bytes, decoded = m.data, m.decoded
    if wanted and not sized:
        kept = held(image_bytes, wanted)
    notes += left_out(wanted, kept, codec.label)
    data = carry(image_bytes, kept) if kept else image_bytes
    atomic_write(Path(output), lambda tmp: Path(tmp).write_bytes(data))
    metrics = {**m.metrics, **rate(len(data), loaded.height, loaded.width, 1 if loaded.pixels.ndim == 2 else 3)}
    del metrics["ssimulacra2"]  # unscored (NaN) unless asked for: not a number JSON can hold
    if options.get("metrics") == "full":
        # SSIMULACRA 2 as the Compare page scores it: on a copy of at most 1 MP (minutes and
        # gigabytes at full size on a 12 MP photo); the notes say when the copy is smaller.
        # Asked for, because it costs more than the rest of the command (a scipy import and
        # about 0.7 s per megapixel).
        metrics["ssimulacra2"] = scaled_ssimulacra2(loaded.pixels, decoded)
        if loaded.width * loaded.height > SSIMULACRA2_PIXELS:
            notes.append(f"SSIMULACRA 2 scored on a copy of at most {SSIMULACRA2_PIXELS / 1e6:g} MP")
    return {"input": source, "output": output, "codec": codec.name,
            "quality": m.quality, **({"effort": effort} if codec.kind == "learned" else {}),
            "width": loaded.width, "height": loaded.height, "bytes_in": os.path.getsize(source), **metrics,
            "image_bytes": len(image_bytes), "metadata_bytes": len(data) - len(image_bytes),
            "metadata": kept.to_dict(),
            "encode_ms": round(m.encode_ms, 1), "decode_ms": round(m.decode_ms, 1),
            "notes": notes}


def decompress_file(source: str, output: str, options: dict) -> dict:
    """Decodes one .aec stream to `output`, in the lossless format its suffix names (PNG by
    default; see `decoded_format`), with the metadata it carries (what that format holds)
    unless `options["strip"]`; returns the record."""
    from .bitstream import unpack
    from .codecs.learned import decode_any
    from .io import atomic_write, to_lossless_bytes
    from .metadata import STRIPPED, carry, held, left_out

    kind = decoded_format(output)
    with open(source, "rb") as f:  # open(), not Path: a missing file's error names it as given
        stream = f.read()
    pixels = decode_any(stream)
    png = to_lossless_bytes(pixels, kind)
    wanted = STRIPPED if options.get("strip") else unpack(stream)[0].metadata
    kept = held(png, wanted)
    if kept:  # the one place metadata is restored, whatever the output format
        png = carry(png, kept)
    atomic_write(Path(output), lambda tmp: Path(tmp).write_bytes(png))
    h, w = pixels.shape[:2]
    return {"input": source, "output": output, "width": w, "height": h, "channels": 1 if pixels.ndim == 2 else 3,
            "bytes_in": len(stream), "bytes": len(png), "bpp": 8 * len(stream) / (h * w),
            "metadata": kept.to_dict(), "notes": left_out(wanted, kept, kind)}


def _guarded(work, source: str, output: str, options: dict) -> dict:
    """work(...), with a failure turned into a record naming the file (nothing else is lost)."""
    try:
        return {"status": "done", **work(source, output, options)}
    except FileNotFoundError:
        return {"status": "failed", "input": source, "output": output, "error": f"{source}: no such file"}
    except _FILE_ERRORS as e:
        message = str(e) if Path(source).name in str(e) else f"{source}: {e}"
        return {"status": "failed", "input": source, "output": output, "error": message}


# A worker's peak memory coding one image: the interpreter, torch and the model, plus what
# grows with the image (its arrays and float copies; the transforms run in tiles, so their
# share is bounded). Measured with benchmarks/batch_memory.py: 1.24 GB for a 12 MP photo
# (hyperprior, plain and with a target size), of which about 0.3 GB before the first file.
WORKER_BASE_BYTES = 400 * 2 ** 20
WORKER_BYTES_PER_PIXEL = 80


def available_memory() -> int | None:
    """Bytes this process may still use: the system's MemAvailable, or less where a cgroup
    (a container's memory limit) leaves less; None where neither can be read."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            limits.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def largest_pixels(paths: list[str]) -> int:
    """The most pixels any of `paths` holds, from its header alone (images by Pillow's lazy
    open, .aec streams by their header); files that cannot be read count 0 (they fail later)."""
    from PIL import Image
    from . import bitstream
    most = 0
    for path in paths:
        try:
            if Path(path).suffix.lower() == ".aec":
                header, _ = bitstream.unpack(Path(path).read_bytes())
                most = max(most, header.height * header.width)
            else:
                with Image.open(path) as img:
                    most = max(most, img.width * img.height)
        except Exception:  # noqa: BLE001  (any unreadable file: its own worker reports it)
            continue
    return most


def affordable_workers(workers: int, pixels: int, available: int | None) -> int:
    """`workers`, fewer where that many coding images of `pixels` at once would not fit in
    `available` bytes (never fewer than one; no bound where the memory is unknown)."""
    if available is None:
        return max(1, workers)
    return max(1, min(workers, available // (WORKER_BASE_BYTES + WORKER_BYTES_PER_PIXEL * pixels)))


def _worker_start(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def run(tasks: list[tuple[str, str]], work, options: dict, workers: int = 2, skip_existing: bool = False,
        progress=None) -> list[dict]:
    """One record per task, in task order: status "done", "skipped" (output there already) or
    "failed" (with `error`). `progress(done, total, record)` after each file. With one
    worker (or one file) everything runs in this process; `workers` is lowered where that
    many would not fit in the memory available (see `affordable_workers`)."""
    records: list[dict | None] = [None] * len(tasks)
    todo = []
    for i, (src, dst) in enumerate(tasks):
        if skip_existing and Path(dst).exists():
            records[i] = {"status": "skipped", "input": src, "output": dst}
        else:
            todo.append(i)
    finished = len(tasks) - len(todo)

    def record(i: int, rec: dict) -> None:
        nonlocal finished
        records[i] = rec
        finished += 1
        if progress:
            progress(finished, len(tasks), rec)

    workers = max(1, min(workers, len(todo)))
    if workers > 1:  # as many as the memory holds, each coding the largest file
        workers = affordable_workers(workers, largest_pixels([tasks[i][0] for i in todo]), available_memory())
    if workers == 1:
        for i in todo:
            record(i, _guarded(work, *tasks[i], options))
        return records
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_start, initargs=(threads,)) as pool:
        futures = {pool.submit(_guarded, work, *tasks[i], options): i for i in todo}
        for future in as_completed(futures):
            i = futures[future]
            try:
                rec = future.result()
            except Exception as e:  # the worker died (killed, out of memory): that file failed
                rec = {"status": "failed", "input": tasks[i][0], "output": tasks[i][1],
                       "error": f"{tasks[i][0]}: worker stopped ({type(e).__name__}: {e})"}
            record(i, rec)
    return records


def summary(records: list[dict]) -> dict:
    """Counts, total bytes in and out, mean bpp and mean PSNR (over the files done in this run)."""
    done = [r for r in records if r["status"] == "done"]
    psnr = [r["psnr"] for r in done if "psnr" in r and math.isfinite(r["psnr"])]
    return {"files": len(records), "done": len(done),
            "skipped": sum(r["status"] == "skipped" for r in records),
            "failed": [r["input"] for r in records if r["status"] == "failed"],
            "bytes_in": sum(r["bytes_in"] for r in done), "bytes_out": sum(r["bytes"] for r in done),
            "mean_bpp": sum(r["bpp"] for r in done) / len(done) if done else math.nan,
            "mean_psnr": sum(psnr) / len(psnr) if psnr else math.nan}


def table(records: list[dict]) -> str:
    """The per-file lines and the summary, as text for a terminal."""
    lines = [f"{'file':<40} {'status':<8} {'quality':>7} {'bytes':>9} {'bpp':>7} {'PSNR':>6}"]
    for r in records:
        if r["status"] == "done":
            q = f"{r['quality']:g}" if "quality" in r else ""
            psnr = f"{r['psnr']:.2f}" if "psnr" in r else ""
            lines.append(f"{_short(r['input']):<40} {'done':<8} {q:>7} {r['bytes']:>9} {r['bpp']:>7.3f} {psnr:>6}")
        else:
            lines.append(f"{_short(r['input']):<40} {r['status']:<8}" + (f" {r['error']}" if "error" in r else ""))
    s = summary(records)
    lines.append(f"{s['done']} of {s['files']} files done, {s['skipped']} skipped, {len(s['failed'])} failed; "
                 f"{s['bytes_in']} bytes in, {s['bytes_out']} out; mean {s['mean_bpp']:.3f} bpp"
                 + (f", mean PSNR {s['mean_psnr']:.2f} dB" if math.isfinite(s["mean_psnr"]) else ""))
    return "\n".join(lines)


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3):]


def comparison_zip(images: dict[str, np.ndarray], left, right, extra=None, codecs=None, progress=None) -> bytes:
    """A zip of several images each coded as the Compare page codes one: per image a folder with
    every coded side's file (the .aec stream, the classical file) and the PNG it decodes to, then
    `results.csv` (per image and side: codec, quality, bytes, bpp, PSNR, MS-SSIM; no SSIMULACRA 2,
    which would cost more than the coding). `left`, `right`, `extra` are `aecore.compare.Side`s;
    an image that cannot be coded gets a row with its error and the others go on.
    `progress(done, total, name)` after each image."""
    import io
    import zipfile

    from . import compare as cmp
    from .io import to_png_bytes
    from .report import csv_text, slug

    rows, stems = [], set()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for done, (name, pixels) in enumerate(images.items(), 1):
            stem, i = slug(name), 2
            while stem in stems:
                stem, i = f"{slug(name)}_{i}", i + 1
            stems.add(stem)
            h, w = pixels.shape[:2]
            try:
                comp = cmp.compare_sides(pixels, left, right, extra, codecs=codecs, perceptual=False)
            except _FILE_ERRORS as e:
                rows.append({"image": name, "folder": stem, "width": w, "height": h, "error": str(e)})
            else:
                third = next((r for r in comp.results if r is not comp.left and r is not comp.right), None)
                for where, r in (("left", comp.left), ("right", comp.right), ("extra", third)):
                    if r is None:
                        continue
                    file = f"{stem}/{stem}.{where}.{r.codec}.{r.extension}"
                    zf.writestr(file, r.data)
                    zf.writestr(f"{stem}/{stem}.{where}.{r.codec}.png", to_png_bytes(r.decoded))
                    rows.append({"image": name, "folder": stem, "width": w, "height": h, "side": where,
                                 "codec": r.codec, "label": r.label, "quality": r.quality, "file": file,
                                 **{k: r.metrics[k] for k in ("bytes", "bpp", "psnr", "ms_ssim")},
                                 "over_budget": int(r.over_budget)})
            if progress:
                progress(done, len(images), name)
        zf.writestr("results.csv", csv_text(rows))
    return buf.getvalue()
