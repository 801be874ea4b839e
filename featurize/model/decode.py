"""Bytes opened as an image, or refused with the reason ``errors/`` records: the header
checked against the pixel cap before anything is decoded, JPEGs drafted at a DCT scale,
EXIF orientation, 16-bit and float modes brought to 8 bits, Pillow's errors classified.

Pure Pillow; :mod:`featurize.model.preprocess` decides the scale and the geometry.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Machine-readable reasons a file can land in ``errors/``.
ERROR_REASONS = ("empty", "not_an_image", "truncated", "too_many_pixels", "decode_error",
                 "not_read", "too_large")


class ImageDecodeError(ValueError):
    """A file that cannot become a network input.

    Parameters
    ----------
    reason : str
        One of :data:`ERROR_REASONS`.
    detail : str
        Human-readable message (usually Pillow's).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_8bit(img: Image.Image) -> Image.Image:
    """Map high-bit-depth single-channel modes to 8-bit ``L``.

    ``Image.convert("RGB")`` on ``I;16``/``I`` clips at 255 instead of rescaling, which
    turns almost every pixel of a 16-bit image white; rescale explicitly instead.
    """
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    return img


def opened(data: bytes, max_pixels: int) -> Image.Image:
    """``Image.open`` with the header checked against ``max_pixels``; nothing decoded."""
    if data is None:
        raise ImageDecodeError("not_read", "listed, but gone when its bytes were fetched")
    if len(data) == 0:
        raise ImageDecodeError("empty", "file has 0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        if _has_image_signature(data):
            # A known format's magic number, but Pillow cannot even read the header:
            # a file cut off within its first bytes (e.g. a PNG's signature + IHDR only).
            raise ImageDecodeError(
                "truncated", f"starts like an image but ends inside its header "
                             f"({len(data)} bytes)") from exc
        raise ImageDecodeError(
            "not_an_image", f"no image format recognised in its first bytes "
                            f"({data[:8]!r}, {len(data)} bytes)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise classified(exc) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_many_pixels",
            f"{width}x{height} = {width * height} pixels exceeds the cap of {max_pixels}",
        )
    return img


@contextmanager
def classifying() -> Iterator[None]:
    """Pillow's errors while pixels are decoded or resampled → :class:`ImageDecodeError`."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise classified(exc) from exc


def upright(img: Image.Image) -> Image.Image:
    """The opened image decoded whole, EXIF orientation applied, 8-bit RGB."""
    with classifying():
        img.load()
        img = ImageOps.exif_transpose(img)
        img = to_8bit(img)
        if img.mode != "RGB":
            img = img.convert("RGB")
    return img


def drafted(img: Image.Image, scale: int) -> tuple[Image.Image, int] | None:
    """The opened JPEG decoded at 1/``scale`` (> 1), 8-bit RGB, in its stored orientation,
    and the scale; None when it is not drafted (another format, a scale of 1, or a JPEG
    Pillow cannot draft), and then nothing is decoded yet."""
    width, height = img.size
    if scale == 1 or img.format != "JPEG":
        return None
    with classifying():
        if img.draft(img.mode, (width // scale, height // scale)) is None:
            return None
        img.load()
        stored = to_8bit(img)
        if stored.mode != "RGB":
            stored = stored.convert("RGB")
    return stored, scale


#: EXIF orientation → the transpose that displays the stored image (as
#: ``ImageOps.exif_transpose`` does).
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def orientation(img: Image.Image) -> int:
    with classifying():
        return int(img.getexif().get(0x0112, 1) or 1)


def oriented(img: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSES.get(orientation)
    return img.transpose(method) if method is not None else img


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*")


def _has_image_signature(data: bytes) -> bool:
    """True when ``data`` starts with the magic number of a common image format.

    >>> _has_image_signature(b"\\x89PNG\\r\\n\\x1a\\n...."), _has_image_signature(b"<html>")
    (True, False)
    """
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def classified(exc: Exception) -> ImageDecodeError:
    """Pillow's decode errors → ``truncated`` or ``decode_error``.

    Pillow says "image file is truncated" (or "Truncated File Read") when the data ends
    early, and "broken data stream" when its decoder rejects the data itself (a garbled
    JPEG scan, a corrupt PNG or GIF stream): the second is ``decode_error``. Files cut at
    every 60th of their length, in six formats, all came out ``truncated``.
    """
    message = str(exc) or type(exc).__name__
    lowered = message.lower()
    truncated = isinstance(exc, EOFError) or any(
        s in lowered for s in ("truncated", "premature end")
    )
    return ImageDecodeError("truncated" if truncated else "decode_error", message)
