"""Loading and saving images safely."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def load_image_folder(folder) -> list[np.ndarray]:
    """All images of a folder (sorted by name) as RGB uint8 arrays."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images found")
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    return out
