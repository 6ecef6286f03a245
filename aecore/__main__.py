"""Command line: python -m aecore COMMAND ... (`--help` lists the commands, `COMMAND --help` their options).

Bad input exits with code 2 and one line on stderr naming the file and the problem;
internal errors exit with 1.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
from pathlib import Path
import sys
import tempfile
import time


def _field_comments(cls) -> dict[str, str]:
    """{field: the comment after it in the class body}, a comment that continues on the lines
    below joined: the dataclass's own notes are the options' help, written once."""
    import inspect
    import re

    notes, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"\s+(\w+)\s*:[^#]*?(?:#\s?(.*))?$", line)
        more = re.match(r"\s+#\s?(.*)$", line)
        if more and last:
            notes[last] += " " + more.group(1).strip()
        elif field and field.group(2):
            last = field.group(1)
            notes[last] = field.group(2).strip()
        else:
            last = None
    return notes


def _add_dataclass_args(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One --flag per dataclass field (underscores become dashes), its comment the help."""
    notes = _field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        note = notes.get(f.name, "").replace("%", "%%")
        if str(f.type) in ("bool", "<class 'bool'>"):  # a switch: off unless given
            parser.add_argument(flag, dest=f.name, action="store_true", help=note)
            continue
        if str(f.type).startswith("int"):  # int, or int | None (left out: None)
            kind = int
        elif "float" in str(f.type):
            kind = float
        else:
            kind = str
        required = f.default is dataclasses.MISSING
        parser.add_argument(flag, dest=f.name, type=kind, required=required,
                            default=None if required else f.default,
                            help=note if f.default in (dataclasses.MISSING, None, "")
                            else f"{note} (default: %(default)s)".lstrip())


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    except ValueError as e:  # settings that do not fit together
        raise InputError(str(e)) from None

    def progress(rec, total):
        val = f" val {json.dumps(rec['val'])}" if "val" in rec else ""
        print(f"step {rec['step']}/{total} loss {rec['loss']:.3f} bpp {rec['bpp']:.3f} "
              f"psnr {rec['psnr']:.2f} {rec['it_per_s']:.2f} it/s{val}", file=sys.stderr, flush=True)

    card = train(cfg, progress=progress)
    if card:
        print(json.dumps({"name": card["name"], "steps": card["training"]["steps"]}))
    return 0


class InputError(Exception):
    """Bad input named by the user: exit code 2."""


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:  # open(), not Path: messages name the path as given
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def cmd_codecs(args) -> int:
    from .codecs import codec_names, get_codec
    for name in codec_names():
        _emit(get_codec(name).describe())
    return 0


@contextlib.contextmanager
def _native_stderr_held():
    """Keeps what C libraries write straight to file descriptor 2 (libtiff's decoder
    messages) off the terminal: the command's own one-line error says what went wrong."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _paths(args, suffix: str) -> list[tuple[str, str]] | None:
    """The (input, output) pairs of a batch (--out-dir), or None for the single INPUT OUTPUT form."""
    from .batch import plan
    if args.out_dir is None:
        if len(args.paths) != 2:
            raise InputError("give INPUT OUTPUT, or several inputs (files or folders) with --out-dir DIR")
        args.input, args.output = args.paths
        return None
    return plan(args.paths, args.out_dir, suffix, {".aec"} if suffix == ".png" else None)


def _batch(args, tasks, work, options: dict) -> int:
    """Runs a batch with a progress line on stderr; the table (or --json) on stdout; 2 if any file failed."""
    from . import batch

    def progress(done, total, rec):
        bar = "#" * int(30 * done / total)
        print(f"\r[{bar:<30}] {done}/{total} {Path(rec['input']).name[:40]:<40}", end="",
              file=sys.stderr, flush=True)

    with _native_stderr_held() if args.workers == 1 else contextlib.nullcontext():
        records = batch.run(tasks, work, options, workers=args.workers, skip_existing=args.skip_existing,
                            progress=progress)
    print(file=sys.stderr)
    summary = batch.summary(records)
    if args.json:
        _emit({"files": records, "summary": summary})
    else:
        print(batch.table(records), flush=True)
    for r in records:
        if r["status"] == "failed":
            print(f"aecore: {r['error']}", file=sys.stderr)
    if summary["failed"]:
        print(f"aecore: {len(summary['failed'])} of {len(records)} files failed: "
              f"{', '.join(summary['failed'])}", file=sys.stderr)
        return 2
    return 0


def _output_codec(args) -> tuple[str, str | None]:
    """(codec, a line to say once the file is written): --codec, or for one INPUT OUTPUT the
    codec OUTPUT's extension names; an extension of another format is refused (exit 2)."""
    from .batch import output_codec
    from .codecs import get_codec
    from .weights import DEFAULT_MODEL

    if args.out_dir is not None or len(args.paths) != 2:  # a batch names its outputs itself
        return get_codec(args.codec or DEFAULT_MODEL).name, None
    try:
        return output_codec(args.codec, args.paths[1])
    except ValueError as e:
        raise InputError(str(e)) from None


def _refine_progress(label: str):
    """A progress(done, total) callback for a refinement: the bar, elapsed and remaining seconds."""
    t0 = time.perf_counter()

    def progress(done, total):
        elapsed = time.perf_counter() - t0
        left = elapsed / done * (total - done) if done else 0
        _progress_bar(done, total, f"{label}: {elapsed:.0f} s, about {left:.0f} s left")
    return progress


_COMPRESS_HELP = """\
Compress an image (prints size and metrics as JSON), or many with --out-dir.

Metadata: the photo's EXIF, its ICC colour profile and its file name go into the .aec file
and come back in decompress's output. EXIF can hold where the photo was taken (GPS
position), when, with which camera, and a thumbnail of the original: anyone with the file
can read them. --strip leaves all of it out; share stripped files. The EXIF orientation is
applied to the pixels, so the EXIF is stored with orientation 1. JPEG and WebP outputs carry
the EXIF and profile too; AVIF, JPEG 2000, JPEG XL and HEIC outputs carry none.

Sizes: bytes and bpp count the whole file, metadata included (so does --target-size);
image_bytes and metadata_bytes give the two parts. Compare with other codecs on stripped
files: the Compare and Rate-distortion pages code without metadata.
"""


def cmd_compress(args) -> int:
    from .batch import compress_file
    from .codecs import get_codec, with_effort
    from .target import parse_size

    name, said = _output_codec(args)
    codec = get_codec(name)
    with_effort(codec, args.effort)  # a classical codec at a refining effort: refused before any work
    try:
        size = None if args.target_size is None else parse_size(args.target_size)
        if args.target_bpp is not None and not 0 < args.target_bpp < float("inf"):
            raise ValueError(f"bits per pixel must be a positive number, got {args.target_bpp}")
    except ValueError as e:
        raise InputError(str(e)) from None
    options = {"codec": codec.name, "quality": args.quality, "target_size": size, "target_bpp": args.target_bpp,
               "metrics": args.metrics, "effort": args.effort, "strip": args.strip}
    tasks = _paths(args, "." + codec.extension)
    if tasks is None:
        refining = args.effort != "fast"
        with _native_stderr_held() if not refining else contextlib.nullcontext():
            record = compress_file(args.input, args.output, options,
                                   progress=_refine_progress(f"{args.effort} effort") if refining else None)
        if refining:
            print(file=sys.stderr)
        _emit(record)
        if said:
            print(f"aecore: {said}", file=sys.stderr)
        return 0
    return _batch(args, tasks, compress_file, options)


def cmd_decompress(args) -> int:
    from .batch import decoded_format, decompress_file

    tasks = _paths(args, ".png")
    options = {"strip": args.strip}
    if tasks is None:
        try:
            kind = decoded_format(args.output)  # refused before the stream is read
        except ValueError as e:
            raise InputError(str(e)) from None
        _emit(decompress_file(args.input, args.output, options))
        if kind != "PNG":
            print(f"aecore: {args.output}: wrote {kind}", file=sys.stderr)
        return 0
    return _batch(args, tasks, decompress_file, options)


def cmd_info(args) -> int:
    from .bitstream import metadata_block, unpack
    data = _read_bytes(args.input)
    header, sections = unpack(data)
    _emit({**header.to_dict(), "bytes": len(data), "sections": [len(s) for s in sections],
           "metadata_bytes": len(metadata_block(header.metadata)),
           "bpp": round(8 * len(data) / (header.height * header.width), 5)})
    return 0


def _progress_bar(done, total, label):
    bar = "#" * int(30 * done / max(1, total))
    print(f"\r[{bar:<30}] {done}/{total} {label:<40}", end="", file=sys.stderr, flush=True)


def cmd_rd(args) -> int:
    from .codecs import get_codec
    from .io import load_image_folder_named
    from .rd import average, default_plan, sweep, write_csv

    images = load_image_folder_named(args.images)
    names = args.codecs.split(",") if args.codecs else ["hyperprior", "seed", "jpeg"]
    if args.effort != "fast":
        classical = [n for n in names if get_codec(n).kind != "learned"]
        if classical:
            print(f"aecore: note: --effort {args.effort} refines the learned codecs only; "
                  f"{', '.join(classical)} coded as always (effort fast)", file=sys.stderr)
    rows = sweep(images, default_plan(names), progress=_progress_bar, effort=args.effort)
    print(file=sys.stderr)
    if args.out:
        write_csv(rows, args.out)
    else:
        write_csv(rows, sys.stdout)
    for row in average(rows):
        print(json.dumps(row), file=sys.stderr)
    return 0


def _report_images(args) -> dict:
    """{name: pixels} from the files and folders named, then the built-in samples asked for."""
    from .imaging import shrink_to_pixels
    from .io import IMAGE_SUFFIXES, load_image, sample_images

    paths = []
    for source in args.images:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                raise InputError(f"{source}: no images found in this folder")
            paths += [(p, str(p)) for p in found]
        else:
            paths.append((path, source))  # messages name it as given
    images = {}
    stems = [p.stem for p, _ in paths]
    with _native_stderr_held():
        for path, shown in paths:  # named by stem, as `rd` names them, unless two files share one
            name = path.stem if stems.count(path.stem) == 1 else str(path)
            images[name] = load_image(path, name=shown).pixels
    if args.samples:
        samples = sample_images()
        wanted = list(samples) if args.samples == "all" else args.samples.split(",")
        for name in wanted:
            if name not in samples:
                raise InputError(f"no sample image {name!r}; the samples are {', '.join(samples)}")
            images[name] = samples[name]
    if not images:
        raise InputError("name at least one image, folder or --samples")
    if args.max_pixels:
        images = {k: shrink_to_pixels(v, args.max_pixels) for k, v in images.items()}
    return images


def cmd_report(args) -> int:
    from . import report
    from .codecs import get_codec
    from .weights import DEFAULT_MODEL

    try:
        target = report.Target.parse(budget=args.budget, bpp=args.bpp, quality=args.quality)
    except ValueError as e:
        raise InputError(str(e)) from None
    names = args.codecs.split(",") if args.codecs else [DEFAULT_MODEL, "jpeg"]
    learned = [n for n in names if get_codec(n).kind == "learned"]
    if not learned:
        raise InputError(f"--codecs {args.codecs}: name one learned codec (e.g. {DEFAULT_MODEL})")
    if len(learned) > 1:
        raise InputError(f"--codecs {args.codecs}: name one learned codec; the others are matched to its size")
    images = _report_images(args)
    sources = [*args.images, *(["sample:" + n for n in (args.samples.split(",") if args.samples != "all"
                                                          else ["all"])] if args.samples else [])]
    codecs = [learned[0], *[n for n in names if n != learned[0]]]
    command = report.command_line(sources, target, codecs, args.out, args.max_pixels)
    built = report.build(images, learned[0], target, [n for n in names if n != learned[0]], command=command,
                         with_rd=not args.no_rd, progress=_progress_bar)
    print(file=sys.stderr)
    paths = report.write(built, args.out)
    for item in built.items:
        _emit({"image": item.name, "verdict": item.verdict,
               "codecs": {r.codec: {"quality": r.quality, "bytes": r.num_bytes, "bpp": round(r.metrics["bpp"], 5),
                                    "psnr": round(r.metrics["psnr"], 4)} for r in item.comparison.results}})
    _emit({"out": args.out, "files": [p.name for p in paths]})
    return 0


def cmd_export(args) -> int:
    from .train import default_run_dir, export_checkpoint
    from .weights import SHIPPED_DIR
    card = export_checkpoint(args.run_dir or default_run_dir(args.run), args.out or args.run,
                             args.weights_dir or SHIPPED_DIR)
    _emit({"name": card["name"], "steps": card["training"]["steps"], "sha256": card["sha256"]})
    return 0


def cmd_export_onnx(args) -> int:
    from .onnx_export import export
    from .weights import available
    if args.name not in available():
        raise InputError(f"no weights named {args.name!r}; available: {', '.join(available())}")
    _emit({"name": args.name, "out": args.out, "files": export(args.name, args.out)})
    return 0


def cmd_finetune(args) -> int:
    from . import jobs
    from .io import load_image_folder_named

    images = load_image_folder_named(args.images)
    fields = {f.name for f in dataclasses.fields(jobs.JobConfig)}
    settings = {k: v for k, v in vars(args).items() if k in fields}
    try:
        job = jobs.create_job(jobs.JobConfig(**{
            **settings, "description": args.description or Path(args.images).resolve().name}), images)
    except jobs.JobError as e:
        raise InputError(str(e)) from None
    for name, why in job.left_out.items():
        print(f"left out {name}: {why}", file=sys.stderr)
    used = len(job.train_images) + len(job.holdout_images)
    print(f"job {job.id}: {len(job.train_images)} training, {len(job.holdout_images)} hold-out images, "
          f"about {jobs.estimate_seconds(job.config, used, job.status['holdout_megapixels']) / 60:.1f} min",
          file=sys.stderr)
    t0 = time.time()

    def progress(phase, done, total, info):
        bar = "#" * int(30 * done / max(1, total))
        if phase == "training":
            detail = f"loss {info['loss']:.3f} bpp {info['bpp']:.3f} psnr {info['psnr']:.2f} " \
                     f"{info['it_per_s']:.2f} it/s"
        else:
            detail = info["label"][:40]
        print(f"\r{phase:<10} [{bar:<30}] {done}/{total} {detail:<48} {time.time() - t0:5.0f}s",
              end="\n" if done == total else "", file=sys.stderr, flush=True)

    job = jobs.run(job, progress=progress)
    if job.state != "finished":
        print(f"\naecore: job {job.id} {job.state}" + (f": {job.error}" if job.error else "")
              + f"; resume with: python -m aecore.jobs run {job.dir}", file=sys.stderr)
        return 130 if job.state == "cancelled" else 1
    r = job.result()
    pick = lambda rows: [{k: round(row[k], 4) for k in ("quality", "bpp", "psnr")} for row in rows]  # noqa: E731
    _emit({"weights": r["weights"], "base": r["base"], "job": job.id, "steps": r["steps"],
           "bd_rate": r["bd_rate"], "holdout": {"images": r["holdout_images"], "base": pick(r["base_rd"]),
                                                "new": pick(r["new_rd"])}, "left_out": job.left_out})
    return 0


def main(argv=None) -> int:
    from .codecs.base import EFFORTS
    parser = argparse.ArgumentParser(prog="python -m aecore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("codecs", help="list codecs, one JSON object per line")
    p.set_defaults(func=cmd_codecs)
    p = sub.add_parser("compress", help="compress an image (prints size and metrics as JSON), or many with --out-dir",
                       description=_COMPRESS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="INPUT OUTPUT, or with --out-dir any number of image files and folders")
    p.add_argument("--codec", help="codec name (default: the default learned model)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quality", type=float, help="quality (learned: 1 to the model's level count; classical 1..100)")
    size.add_argument("--target-size", metavar="SIZE",
                      help="the best quality whose file fits in SIZE: 25000, 25KB (1000 bytes), 24.4KiB (1024)")
    size.add_argument("--target-bpp", type=float, metavar="BPP",
                      help="the best quality whose file fits in BPP bits per pixel (the whole file)")
    p.add_argument("--metrics", choices=("fast", "full"), default="fast",
                   help="fast: size, PSNR, SSIM, MS-SSIM, blockiness (default); full: also SSIMULACRA 2, "
                        "on a copy of at most 1 MP (about a second more per megapixel)")
    p.add_argument("--effort", choices=EFFORTS, default="fast",
                   help="learned codecs: fast (the plain encoder, default), balanced or best (the latents refined "
                        "for this image: smaller files at the same quality, the same decoder; about 10 s and 90 s "
                        "per 768x512 image on 2 cores, with a progress line; Ctrl-C cancels and writes nothing). "
                        "Refused for classical codecs. With --target-size/--target-bpp the quality is searched "
                        "with the fast encoder, then coded at this effort and checked to fit (searched lower if "
                        "it does not), so the file may land a little under the budget")
    p.add_argument("--strip", action="store_true",
                   help="leave the metadata out: EXIF (GPS position, camera, date, thumbnail), ICC profile, file name")
    p.set_defaults(func=cmd_compress)
    p = sub.add_parser("decompress", help="decode an .aec stream to PNG (or .tif, .bmp, .ppm by its extension) "
                                          "with the metadata it carries, "
                                          "or many with --out-dir")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="INPUT OUTPUT, or with --out-dir any number of .aec files and folders")
    p.add_argument("--strip", action="store_true", help="write the picture without the metadata the stream carries")
    p.set_defaults(func=cmd_decompress)
    for p in (sub.choices["compress"], p):
        p.add_argument("--out-dir", metavar="DIR",
                       help="write every output here, keeping the folders' trees (a batch)")
        p.add_argument("--workers", type=int, default=2, help="worker processes of a batch (default: %(default)s)")
        p.add_argument("--skip-existing", action="store_true",
                       help="leave out files whose output is already there (rerunning an interrupted batch)")
        p.add_argument("--json", action="store_true", help="a batch's records and summary as one JSON object")
    p = sub.add_parser("info", help="print an .aec header as JSON")
    p.add_argument("input", help=".aec stream")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("rd", help="rate-distortion sweep of codecs over a folder of images (CSV)")
    p.add_argument("--images", required=True, help="folder of images to sweep")
    p.add_argument("--codecs", help="comma-separated codec names (default hyperprior,seed,jpeg)")
    p.add_argument("--out", help="CSV file to write (default: standard output)")
    p.add_argument("--effort", choices=EFFORTS, default="fast",
                   help="the learned codecs' encode effort (fast, balanced, best); classical codecs are coded as "
                        "always. The CSV records each row's effort and encode time (encode_ms)")
    p.set_defaults(func=cmd_rd)

    p = sub.add_parser("report", help="a PNG figure per image, an offline HTML report and CSV: learned vs JPEG "
                                      "at one file size")
    p.add_argument("images", nargs="*", help="image files or folders of images")
    p.add_argument("--samples", nargs="?", const="all",
                   help="add the built-in sample photos (all, or comma-separated names, e.g. Astronaut,Coffee)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", help="file size for each image, e.g. 25KB (1 KB = 1000 bytes)")
    size.add_argument("--bpp", help="file size as bits per pixel, e.g. 0.25")
    size.add_argument("--quality", type=float, help="the learned codec's quality instead of a size (1..8)")
    p.add_argument("--codecs", help="one learned codec, then classical ones matched to its size "
                                    "(default: hyperprior,jpeg; JPEG is always included)")
    p.add_argument("--max-pixels", type=int, help="code larger images from a copy scaled down to this many pixels")
    p.add_argument("--no-rd", action="store_true", help="leave out the rate-distortion sweep and chart (faster)")
    p.add_argument("--out", required=True, help="folder to write the report into (created)")
    p.set_defaults(func=cmd_report)

    argv = sys.argv[1:] if argv is None else list(argv)
    p = sub.add_parser("train", help="train or fine-tune a model (resumes from its checkpoint)")
    if argv[:1] == ["train"]:  # its options come from TrainConfig, whose module imports torch
        from .train import TrainConfig
        _add_dataclass_args(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune weights on a folder of images, then compare on held-out ones")
    p.add_argument("--images", required=True, help="folder of images (some are held out for the comparison)")
    if argv[:1] == ["finetune"]:  # its options come from JobConfig, whose package other commands never need
        from .jobs import JobConfig
        _add_dataclass_args(p, JobConfig)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("export", help="export a training run's latest checkpoint as named weights")
    p.add_argument("--run", required=True, help="run name (the --out of the training run)")
    p.add_argument("--run-dir", help="run folder (default ~/.cache/aecore/runs/RUN)")
    p.add_argument("--out", help="weights name (default: the run name)")
    p.add_argument("--weights-dir", help="destination folder (default: the shipped weights folder)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("export-onnx", help="write a learned model's transforms as ONNX graphs and its entropy "
                                           "tables as JSON, for decoders without aecore (docs/decode_onnx.py is one)")
    p.add_argument("name", help="learned weights name (e.g. hyperprior, seed)")
    p.add_argument("out", help="folder to write the graphs and entropy.json into (created)")
    p.set_defaults(func=cmd_export_onnx)

    args = parser.parse_args(argv)
    from .codecs import CodecError
    from .io import ImageError
    from .weights import WeightsError
    try:
        return args.func(args)
    except (InputError, ImageError, CodecError, WeightsError) as e:
        message = str(e)
        source = getattr(args, "input", None)
        named = [p for p in (source, getattr(args, "output", None)) if p]
        if source and not any(Path(p).name in message for p in named):
            message = f"{source}: {message}"
        print(f"aecore: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are written whole or not at all (io.atomic_write)
        print("\naecore: cancelled; no file was left half-written", file=sys.stderr)
        return 130
    except FileNotFoundError as e:
        print(f"aecore: {e.filename}: no such file", file=sys.stderr)
        return 2
    except OSError as e:  # a folder or file the user named cannot be read or written
        print(f"aecore: {e.filename or ''}: {e.strerror or e}".replace(": : ", ": "), file=sys.stderr)
        return 2
    except Exception as e:  # an internal error: one line, not a traceback
        if os.environ.get("AECORE_DEBUG"):
            raise
        print(f"aecore: internal error: {type(e).__name__}: {e} (set AECORE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
