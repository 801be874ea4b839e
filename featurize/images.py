"""Image decoding and preprocessing: bytes in, a MobileNetV2-ready array out.

Everything here is pure Python/NumPy/Pillow so it can be tested without Spark. The
single preprocessing function, :func:`preprocess_image`, is what the Spark UDF calls
for every file; :data:`PREPROCESSING` names it in each run's manifest.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Name recorded in the manifest. Changing what :func:`preprocess_image` does means
#: changing this name, so a predict job can refuse features made differently.
PREPROCESSING = "pillow-exif-rgb-bilinear224-mobilenet_v2-v1"

#: Network input size (height, width).
IMAGE_SIZE = (224, 224)

#: Default cap on decoded pixels (width x height). Checked from the header, before
#: any pixel buffer is allocated, so a lying header cannot exhaust memory.
DEFAULT_MAX_PIXELS = 40_000_000

#: Extensions read by default (compared case-insensitively).
DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png")

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


@dataclass(frozen=True)
class DecodeResult:
    """Outcome of :func:`try_preprocess`: exactly one of ``array`` or ``reason`` is set."""

    array: np.ndarray | None
    reason: str | None = None
    detail: str | None = None


def _to_8bit(img: Image.Image) -> Image.Image:
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


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes into an 8-bit RGB Pillow image, EXIF orientation applied.

    Parameters
    ----------
    data : bytes
        The file's content.
    max_pixels : int
        Refuse images whose header declares more pixels than this.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``.

    Raises
    ------
    ImageDecodeError
        With ``reason`` one of :data:`ERROR_REASONS`.
    """
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
        raise ImageDecodeError("not_an_image", str(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _classified(exc) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_many_pixels",
            f"{width}x{height} = {width * height} pixels exceeds the cap of {max_pixels}",
        )
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_8bit(img)
        if img.mode != "RGB":
            img = img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _classified(exc) from exc
    return img


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*")


def _has_image_signature(data: bytes) -> bool:
    """True when ``data`` starts with the magic number of a common image format.

    >>> _has_image_signature(b"\\x89PNG\\r\\n\\x1a\\n...."), _has_image_signature(b"<html>")
    (True, False)
    """
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _classified(exc: Exception) -> ImageDecodeError:
    """Pillow's decode errors → ``truncated`` or ``decode_error``."""
    message = str(exc) or type(exc).__name__
    lowered = message.lower()
    truncated = isinstance(exc, EOFError) or any(
        s in lowered for s in ("truncated", "broken data stream", "premature end")
    )
    return ImageDecodeError("truncated" if truncated else "decode_error", message)


def preprocess_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The one preprocessing function: bytes → ``float32[224, 224, 3]`` in [-1, 1].

    Decode with Pillow, apply EXIF orientation, convert to RGB, resize to 224×224 with
    Pillow's bilinear filter, then ``keras.applications.mobilenet_v2.preprocess_input``.

    Parameters
    ----------
    data : bytes
        Encoded image (JPEG, PNG, anything Pillow reads).
    max_pixels : int
        See :func:`decode_rgb`.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(224, 224, 3)``.

    Raises
    ------
    ImageDecodeError
        When the bytes are not a usable image.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (10, 20), (255, 0, 0)).save(buf, "PNG")
    >>> x = preprocess_image(buf.getvalue())
    >>> x.shape, float(x[0, 0, 0]), float(x[0, 0, 1])
    ((224, 224, 3), 1.0, -1.0)
    """
    from keras.applications.mobilenet_v2 import preprocess_input

    img = decode_rgb(data, max_pixels=max_pixels)
    if img.size != (IMAGE_SIZE[1], IMAGE_SIZE[0]):
        img = img.resize((IMAGE_SIZE[1], IMAGE_SIZE[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    return preprocess_input(arr)


def try_preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodeResult:
    """:func:`preprocess_image`, with a decode failure returned instead of raised."""
    try:
        return DecodeResult(preprocess_image(data, max_pixels=max_pixels))
    except ImageDecodeError as exc:
        return DecodeResult(None, exc.reason, exc.detail)
    # Pillow's format plugins raise arbitrary exception types on malformed data (e.g.
    # struct.error or KeyError from a broken EXIF block); one such file must become an
    # error row, never fail the task and with it the job.
    except Exception as exc:  # noqa: BLE001
        return DecodeResult(None, "decode_error", f"{type(exc).__name__}: {exc}")
