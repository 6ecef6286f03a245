"""Every built-in codec and architecture name, and where each is implemented, on the ground
floor (imports nothing).

The codec and model registries fill themselves from these tables as their classes load
(`register_codec`, `register_model` look their class up here), and naming rules that must
know every name (`weights.reserved_names`) read the tables without importing the codecs or
torch. A new classical codec or architecture is one line here and its decorated class.
"""
from __future__ import annotations

# name: "module:class" of the classical codecs, in the order the app lists them.
CLASSICAL_CODECS = {
    "jpeg": "aecore.codecs.classical:JPEG",
    "webp": "aecore.codecs.classical:WebP",
    "avif": "aecore.codecs.classical:AVIF",
    "jpeg2000": "aecore.codecs.classical:JPEG2000",
    "jxl": "aecore.codecs.classical:JPEGXL",
    "heic": "aecore.codecs.classical:HEIC",
}

# name: "module:class" of the learned architectures (a model card's `arch`).
ARCHITECTURES = {
    "hyperprior": "aecore.models.hyperprior:Hyperprior",
    "seed": "aecore.models.seed:SeedAutoencoder",
    "seed-hyperprior": "aecore.models.seed:SeedHyperprior",
}


def name_of(cls: type, table: dict[str, str]) -> str:
    """The name `table` gives the class `cls`; LookupError for a class the table does not list."""
    where = f"{cls.__module__}:{cls.__qualname__}"
    for name, spec in table.items():
        if spec == where:
            return name
    raise LookupError(f"{where} is not listed in aecore.registry; add its name there")


def names() -> set[str]:
    """Every codec and architecture name."""
    return set(CLASSICAL_CODECS) | set(ARCHITECTURES)
