"""Image decoding and preprocessing: bytes in, a MobileNetV2-ready array out.

Everything here is pure Python/NumPy/Pillow so it can be tested without Spark. The
single preprocessing function, :func:`preprocess_image`, is what the Spark UDF calls
for every file; :attr:`Preprocessing.name` names it in each run's manifest.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The input size MobileNetV2's ImageNet weights were trained at; any multiple of 32
#: from 96 to 512 works without the top (1280 features after the average pool).
DEFAULT_IMAGE_SIZE = 224
IMAGE_SIZES = tuple(range(96, 513, 32))
MODES = ("crop", "squash")
#: The crop keeps this share of the shorter side (ImageNet's 224 of 256).
CROP_FRACTION = 224 / 256

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


@dataclass(frozen=True)
class Preprocessing:
    """How bytes become the network's input: ``mode`` (``crop`` or ``squash``) at
    ``size`` × ``size``.

    :attr:`name` is recorded in every run's manifest; a run made with another name cannot
    be resumed or predicted with (its features would not be comparable). Changing what
    :func:`preprocess_image` does means changing the names.

    >>> Preprocessing().name
    'pillow-exif-rgb-crop875-bilinear224-mobilenet_v2-v1'
    >>> Preprocessing("squash").name  # the name runs made before the crop existed carry
    'pillow-exif-rgb-bilinear224-mobilenet_v2-v1'
    """

    mode: str = "crop"
    size: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"preprocessing {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.size not in IMAGE_SIZES:
            raise ValueError(f"image size {self.size}: give a multiple of 32 from 96 to 512")

    @property
    def name(self) -> str:
        crop = "crop875-" if self.mode == "crop" else ""
        return f"pillow-exif-rgb-{crop}bilinear{self.size}-mobilenet_v2-v1"

    def to_manifest(self) -> dict[str, object]:
        return {"name": self.name, "mode": self.mode, "image_size": [self.size, self.size],
                "resample": "bilinear",
                "crop_fraction": CROP_FRACTION if self.mode == "crop" else None}

    @classmethod
    def from_manifest(cls, section: dict) -> "Preprocessing":
        """The preprocessing a run recorded (runs from before ``mode`` squashed)."""
        size = (section.get("image_size") or [DEFAULT_IMAGE_SIZE])[0]
        return cls(section.get("mode", "squash"), int(size))

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The region of a ``width`` × ``height`` image that becomes the input.

        >>> Preprocessing().box(400, 300)  # the central 262.5 px square of 300
        (68.75, 18.75, 331.25, 281.25)
        >>> Preprocessing("squash").box(400, 300)
        (0.0, 0.0, 400.0, 300.0)
        """
        if self.mode == "squash":
            return (0.0, 0.0, float(width), float(height))
        side = min(width, height) * CROP_FRACTION
        left, top = (width - side) / 2, (height - side) / 2
        return (left, top, left + side, top + side)

    def fit(self, img: Image.Image) -> Image.Image:
        """The RGB image at the network's size: one bilinear resample of :meth:`box`
        (the crop and the resize in one step, so the pixels are interpolated once)."""
        if self.mode == "squash" and img.size == (self.size, self.size):
            return img
        return img.resize((self.size, self.size), Image.BILINEAR,
                          box=self.box(*img.size))


#: The default preprocessing.
DEFAULT_PREPROCESSING = Preprocessing()


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
        raise ImageDecodeError(
            "not_an_image", f"no image format recognised in its first bytes "
                            f"({data[:8]!r}, {len(data)} bytes)") from exc
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


def preprocess_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                     preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> np.ndarray:
    """The one preprocessing function: bytes → ``float32[size, size, 3]`` in [-1, 1].

    Decode with Pillow, apply EXIF orientation, convert to RGB, fit to the square input
    (:meth:`Preprocessing.fit`: the central crop, or the whole image squashed) with
    Pillow's bilinear filter, then ``keras.applications.mobilenet_v2.preprocess_input``
    (:func:`scale_pixels`).

    Parameters
    ----------
    data : bytes
        Encoded image (JPEG, PNG, anything Pillow reads).
    max_pixels : int
        See :func:`decode_rgb`.
    preprocessing : Preprocessing
        Crop or squash, and the size.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(size, size, 3)``.

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
    img = preprocessing.fit(decode_rgb(data, max_pixels=max_pixels))
    return scale_pixels(np.asarray(img, dtype=np.float32))


def scale_pixels(arr: np.ndarray) -> np.ndarray:
    """``keras.applications.mobilenet_v2.preprocess_input`` in NumPy: ``x / 127.5 - 1``
    in float32, the same two operations in the same order (Keras' "tf" mode), so the
    values are bit-identical (tested). Written out so the Python workers of the
    openvino engine never import Keras or TensorFlow.

    >>> scale_pixels(np.array([0.0, 127.5, 255.0], dtype=np.float32)).tolist()
    [-1.0, 0.0, 1.0]
    """
    arr = arr / np.float32(127.5)
    arr -= np.float32(1.0)
    return arr


def try_preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                   preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> DecodeResult:
    """:func:`preprocess_image`, with a decode failure returned instead of raised."""
    try:
        return DecodeResult(preprocess_image(data, max_pixels=max_pixels,
                                             preprocessing=preprocessing))
    except ImageDecodeError as exc:
        return DecodeResult(None, exc.reason, exc.detail)
    # Pillow's format plugins raise arbitrary exception types on malformed data (e.g.
    # struct.error or KeyError from a broken EXIF block); one such file must become an
    # error row, never fail the task and with it the job.
    except Exception as exc:  # noqa: BLE001
        return DecodeResult(None, "decode_error", f"{type(exc).__name__}: {exc}")
