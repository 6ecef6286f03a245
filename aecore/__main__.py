"""Command line: python -m aecore {codecs,compress,decompress,info,rd,train} ...

Bad input exits with code 2 and one line on stderr naming the file and the problem;
internal errors exit with 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def _add_dataclass_args(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One --flag per dataclass field (underscores become dashes)."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = f.type if isinstance(f.type, type) else str
        if "int" in str(f.type) and "None" not in str(f.type):
            kind = int
        elif "float" in str(f.type):
            kind = float
        else:
            kind = str
        required = f.default is dataclasses.MISSING
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, required=required,
                            default=None if required else f.default)


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})

    def progress(rec, total):
        val = f" val {json.dumps(rec['val'])}" if "val" in rec else ""
        print(f"step {rec['step']}/{total} loss {rec['loss']:.3f} bpp {rec['bpp']:.3f} "
              f"psnr {rec['psnr']:.2f} {rec['it_per_s']:.2f} it/s{val}", file=sys.stderr, flush=True)

    card = train(cfg, progress=progress)
    if card:
        print(json.dumps({"name": card["name"], "steps": card["training"]["steps"]}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from .train import TrainConfig
    p = sub.add_parser("train", help="train or fine-tune a model (resumes from its checkpoint)")
    _add_dataclass_args(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
