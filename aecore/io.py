"""Loading and saving images safely.

Every picture enters aecore through `load_image`. It refuses non-images,
corrupt files and decompression bombs with an `ImageError` that names the
file, and it turns whatever Pillow decodes into plain uint8 pixels: RGB
(H, W, 3), or (H, W) for grayscale sources. Each conversion is reported in
words, so the user can see why the pixels differ from the file.
"""
from __future__ import annotations

import functools
import io
import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .metadata import Metadata, read as read_metadata

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

# 50 MP covers every camera photo while keeping a decoded image under ~150 MB.
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "AECORE_MAX_PIXELS"

# Only these decoders run. Pillow knows many more (EPS even starts Ghostscript),
# which is more attack surface than an upload box needs. The JPEG decoder also
# opens the MPO files of many phone cameras (source_format "MPO").
_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
_EXPECTED = "PNG, JPEG, WebP, TIFF, BMP, GIF expected"
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")

# Pillow's plugins signal malformed input with a mix of exception types.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)

# EXIF orientation tag values (EXIF 2.3, tag 0x0112) as Pillow undoes them.
_ORIENTATION_WORDS = {
    2: "mirrored left to right",
    3: "rotated 180 degrees",
    4: "mirrored top to bottom",
    5: "mirrored across the diagonal",
    6: "rotated 90 degrees clockwise",
    7: "mirrored across the anti-diagonal",
    8: "rotated 90 degrees counter-clockwise",
}


@dataclass
class LoadedImage:
    """Decoded pixels plus what the file was and what was done to it."""

    pixels: np.ndarray  # uint8, (H, W, 3) RGB or (H, W) gray
    name: str
    source_format: str  # Pillow's format name, e.g. "PNG"
    source_mode: str  # Pillow's mode before conversion, e.g. "RGBA", "I;16"
    notes: list[str] = field(default_factory=list)
    metadata: Metadata = Metadata()  # EXIF (orientation reset to 1), ICC profile, file name

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def max_pixels_limit() -> int:
    """The pixel limit in force: `AECORE_MAX_PIXELS` if set, else `DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a positive whole number of pixels; fix or unset it")
    return value


def load_image(source, name: str | None = None, max_pixels: int | None = None) -> LoadedImage:
    """Decodes a path, bytes or binary file object into uint8 pixels.

    The size is checked from the header before any pixel is decoded, so a
    bomb costs nothing. Raises `ImageError` for anything that is not a whole,
    readable image within `max_pixels` (default: `max_pixels_limit()`).
    """
    limit = max_pixels_limit() if max_pixels is None else int(max_pixels)
    fp, name, head = _open_source(source, name)
    with warnings.catch_warnings():
        # Pillow warns between its own limit and twice it; ours decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # A damaged EXIF block costs only the orientation (see _orientation), not a warning.
        warnings.filterwarnings("ignore", message="(?i).*corrupt exif", category=UserWarning)
        # A TIFF that ends early is refused or decoded as far as it goes: either way, said once.
        warnings.filterwarnings("ignore", message="Truncated File Read", category=UserWarning)
        try:
            im = Image.open(fp, formats=_FORMATS)
        except Image.DecompressionBombError as e:
            raise _bomb_error(name, e, limit) from e
        except UnidentifiedImageError as e:
            if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
                raise ImageError(f"{name}: image is truncated or corrupt") from e
            raise ImageError(f"{name}: {_not_an_image(head)}") from e
        except _DECODE_ERRORS as e:
            raise ImageError(f"{name}: image is truncated or corrupt") from e
        with im:
            _check_size(name, im.size, limit)
            try:
                return _decode(im, name)
            except Image.DecompressionBombError as e:
                raise _bomb_error(name, e, limit) from e
            except _DECODE_ERRORS as e:
                raise ImageError(f"{name}: image is truncated or corrupt") from e


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W) gray to (H, W, 3); RGB is returned as is, not copied."""
    _check_pixels(pixels)
    return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels


def to_png_bytes(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless PNG of uint8 RGB or gray pixels (gray stays one channel). `compress_level` is
    zlib's 0-9 (6, Pillow's default; lower is faster, the pixels the same)."""
    return to_lossless_bytes(pixels, "PNG", compress_level=compress_level)


def to_lossless_bytes(pixels: np.ndarray, kind: str, **options) -> bytes:
    """uint8 RGB or gray pixels in a lossless Pillow format ("PNG", "TIFF", "BMP", "PPM", or "WEBP"
    with lossless=True); `options` go to Pillow's writer."""
    _check_pixels(pixels)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format=kind, **options)
    return buf.getvalue()


def atomic_write(path, write) -> None:
    """write(tmp_path), then rename over `path`: a crash leaves the old file (or none), never half a file.

    The temporary file sits in the same folder, so os.replace is a rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_png(pixels: np.ndarray, path) -> Path:
    """Writes a PNG atomically, so a crash never leaves half a file at `path`."""
    data = to_png_bytes(pixels)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return Path(path)


def sample_images() -> dict[str, np.ndarray]:
    """Photos bundled with scikit-image (no network), keyed by a display name.

    The arrays are loaded once and shared by every caller, so they are
    read-only: copy before modifying. The dict itself is the caller's own.
    """
    return dict(_bundled_samples())


@functools.cache
def _bundled_samples() -> dict[str, np.ndarray]:
    from skimage import data  # imported here: skimage.data is slow to import

    images = {
        "Astronaut": data.astronaut(),
        "Coffee": data.coffee(),
        "Chelsea": data.chelsea(),
        "Rocket": data.rocket(),
        "Camera": data.camera(),  # grayscale
    }
    for pixels in images.values():
        pixels.setflags(write=False)
    return images


def load_image_folder(folder) -> list[np.ndarray]:
    """All images of a folder (sorted by name) as RGB uint8 arrays, gray expanded."""
    return list(load_image_folder_named(folder).values())


def load_image_folder_named(folder) -> dict[str, np.ndarray]:
    """All images of a folder as RGB uint8 arrays, keyed by file stem in name order.

    The stem ("kodim01") labels rows in rate-distortion tables; when two
    files share a stem ("a.png", "a.jpg") the full names are used instead.
    """
    given, folder = folder, Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{given}: no such folder; pass a folder that holds images")
    # Dot files are skipped: macOS leaves "._photo.jpg" companions that are not images.
    paths = sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not paths:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ImageError(f"{given}: no images found; add files ending in {suffixes}")
    stems = [p.stem for p in paths]
    return {
        (p.stem if stems.count(p.stem) == 1 else p.name): to_rgb(load_image(p).pixels)
        for p in paths
    }


def _open_source(source, name):
    """(what Pillow opens, display name, first bytes) for a path, bytes or file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        if path.is_dir():
            raise ImageError(f"{name}: is a folder, not an image file")
        try:
            with path.open("rb") as f:
                head = f.read(16)
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as e:
            raise ImageError(f"{name}: cannot be read ({e.strerror or e})") from e
        fp = path
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif hasattr(source, "read"):
            name = name or Path(str(getattr(source, "name", "") or "")).name or None
            data = source.read()
            if not isinstance(data, bytes):
                raise TypeError("load_image needs a file opened in binary mode ('rb')")
        else:
            raise TypeError(f"load_image takes a path, bytes or a binary file object, not {type(source).__name__}")
        name = name or "image"
        head = data[:16]
        fp = io.BytesIO(data)
    if not head:
        raise ImageError(f"{name}: file is empty")
    return fp, name, head


def _not_an_image(head: bytes) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")):
        # A common slip: "Save link as" on an image page saves the page.
        return f"is a web page (HTML), not an image file ({_EXPECTED}); save the image itself"
    return f"not an image file ({_EXPECTED})"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}" if pixels >= 100_000 else f"{pixels / 1e6:.2g}"


def _too_large(name: str, pixels: int, limit: int, size=None) -> ImageError:
    dims = f"{size[0]}x{size[1]} is " if size else ""
    return ImageError(
        f"{name}: {dims}{_megapixels(pixels)} megapixels, above the {_megapixels(limit)} megapixel limit; "
        f"downscale it or raise {MAX_PIXELS_ENV}"
    )


def _check_size(name: str, size: tuple[int, int], limit: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > limit:
        raise _too_large(name, w * h, limit, size)


def _bomb_error(name: str, err: Exception, limit: int) -> ImageError:
    """Pillow's own bomb guard fired (before we saw the size); reword it with our limit."""
    pixels = next((int(t.strip("(")) for t in str(err).split() if t.strip("(").isdigit()), None)
    pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if pixels is not None and pixels > limit:
        return _too_large(name, pixels, limit)
    return ImageError(
        f"{name}: above Pillow's {_megapixels(pillow_limit)} megapixel safety limit; "
        "raise PIL.Image.MAX_IMAGE_PIXELS as well to load it"
    )


def _decode(im: Image.Image, name: str) -> LoadedImage:
    """Decodes the first frame of an opened image into uint8 pixels, noting each conversion."""
    notes = []
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > 1:
        im.seek(0)
        notes.append(f"first frame of {n_frames} used")
    # Pillow silently keeps the high byte of 16-bit RGB(A); the tile's raw mode tells.
    deep = any(";16" in str(tile.args) for tile in im.tile)
    fmt, mode = im.format or "unknown", im.mode
    im.load()
    metadata = read_metadata(im, name, notes)

    orientation = _orientation(im)
    if orientation in _ORIENTATION_WORDS:
        im = ImageOps.exif_transpose(im)
        notes.append(f"EXIF orientation applied ({_ORIENTATION_WORDS[orientation]})")

    pixels = _to_uint8(im, notes)
    if deep and "16-bit image reduced to 8 bits" not in notes:
        notes.append("16-bit image reduced to 8 bits")
    return LoadedImage(np.ascontiguousarray(pixels), name, fmt, mode, notes, metadata)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block should not cost the picture
        return 1


def _to_uint8(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Pillow image of any mode to uint8 (H, W) or (H, W, 3)."""
    mode = im.mode
    if mode == "L":
        return np.array(im)
    if mode == "RGB":
        return np.array(im)
    if mode == "1":
        notes.append("1-bit image converted to 8-bit grayscale")
        return np.array(im.convert("L"))
    if mode.startswith("I;16"):
        notes.append("16-bit image reduced to 8 bits")
        return _from_16bit(np.array(im))
    if mode in ("I", "F"):
        return _from_wide(np.array(im), mode, notes)
    if mode in ("LA", "La"):
        return _composite(np.array(im.convert("LA") if mode == "La" else im), notes)
    if mode in ("RGBA", "RGBa"):
        return _composite(np.array(im.convert("RGBA") if mode == "RGBa" else im), notes)
    if mode in ("P", "PA"):
        notes.append("palette converted to RGB")
        if mode == "PA" or "transparency" in im.info:
            return _composite(np.array(im.convert("RGBA")), notes)
        return np.array(im.convert("RGB"))
    if mode != "RGBX":
        notes.append(f"{mode} converted to RGB")
    return np.array(im.convert("RGB"))


def _from_16bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255 by round(v / 257), the exact inverse of 8-to-16-bit v * 257."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _from_wide(values: np.ndarray, mode: str, notes: list[str]) -> np.ndarray:
    """32-bit int or float gray to uint8.

    These modes carry no bit depth, so the values decide: floats within
    [0, 1] are scaled by 255; otherwise values up to 255 are kept and larger
    ones are read as 16-bit. Anything outside [0, 65535] is clipped.
    """
    values = np.nan_to_num(values.astype(np.float64))
    if mode == "F" and values.size and values.min() >= 0 and values.max() <= 1:
        notes.append("floating-point image scaled to 8 bits")
        return np.rint(values * 255).astype(np.uint8)
    values = np.clip(np.rint(values), 0, 65535)
    if values.size and values.max() > 255:
        notes.append("16-bit image reduced to 8 bits")
        return _from_16bit(values.astype(np.uint16))
    notes.append(f"{'32-bit integer' if mode == 'I' else 'floating-point'} image converted to 8 bits")
    return values.astype(np.uint8)


def _composite(pixels: np.ndarray, notes: list[str]) -> np.ndarray:
    """Drops the alpha channel of (H, W, 2|4) uint8 pixels by blending onto white."""
    color, alpha = pixels[..., :-1].astype(np.uint32), pixels[..., -1:].astype(np.uint32)
    if alpha.min(initial=255) < 255:
        notes.append("alpha channel composited on white")
    out = (color * alpha + 255 * (255 - alpha) + 127) // 255
    out = out.astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        desc = f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise ValueError(f"expected uint8 pixels shaped (H, W) or (H, W, 3), got {desc}")
