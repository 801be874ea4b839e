"""Image decoding and preprocessing: bytes in, a MobileNetV2-ready array out.

Everything here is pure Python/NumPy/Pillow so it can be tested without Spark. The
single preprocessing function, :func:`preprocess_image`, is what the Spark UDF calls
for every file; :attr:`Preprocessing.name` names it in each run's manifest.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The input size MobileNetV2's ImageNet weights were trained at; any multiple of 32
#: from 96 to 512 works without the top (1280 features after the average pool).
DEFAULT_IMAGE_SIZE = 224
IMAGE_SIZES = tuple(range(96, 513, 32))
MODES = ("crop", "squash")
#: How a JPEG is decoded: ``draft`` (default) asks libjpeg for the smallest DCT scale
#: (1/8, 1/4, 1/2) that still holds the input size over the box, and resizes with a
#: two-step reduce; ``full`` decodes every pixel (every run made before draft existed).
DECODES = ("draft", "full")
#: Pillow's ``reducing_gap`` of the draft decode: where the box is at least twice this
#: times the input, a ``reduce()`` by an integer factor first, leaving the bilinear step
#: a shrink of at least this factor.
REDUCING_GAP = 2.0
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
    ``size`` × ``size``, JPEGs decoded at a reduced scale (``decode="draft"``) or whole.

    :attr:`name` is recorded in every run's manifest; a run made with another name cannot
    be resumed or predicted with (its features would not be comparable). Changing what
    :func:`preprocess_image` does means changing the names.

    >>> Preprocessing().name
    'pillow-draft-exif-rgb-crop875-gap2-bilinear224-mobilenet_v2-v1'
    >>> Preprocessing(decode="full").name  # runs made before the draft decode
    'pillow-exif-rgb-crop875-bilinear224-mobilenet_v2-v1'
    >>> Preprocessing("squash", decode="full").name  # runs made before the crop existed
    'pillow-exif-rgb-bilinear224-mobilenet_v2-v1'
    """

    mode: str = "crop"
    size: int = DEFAULT_IMAGE_SIZE
    decode: str = "draft"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"preprocessing {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.size not in IMAGE_SIZES:
            raise ValueError(f"image size {self.size}: give a multiple of 32 from 96 to 512")
        if self.decode not in DECODES:
            raise ValueError(f"decode {self.decode!r}: choose one of {', '.join(DECODES)}")

    @property
    def name(self) -> str:
        crop = "crop875-" if self.mode == "crop" else ""
        if self.decode == "full":
            return f"pillow-exif-rgb-{crop}bilinear{self.size}-mobilenet_v2-v1"
        return f"pillow-draft-exif-rgb-{crop}gap2-bilinear{self.size}-mobilenet_v2-v1"

    def to_manifest(self) -> dict[str, object]:
        return {"name": self.name, "mode": self.mode, "image_size": [self.size, self.size],
                "resample": "bilinear", "decode": self.decode,
                "reducing_gap": REDUCING_GAP if self.decode == "draft" else None,
                "crop_fraction": CROP_FRACTION if self.mode == "crop" else None}

    @classmethod
    def from_manifest(cls, section: dict) -> "Preprocessing":
        """The preprocessing a run recorded (runs from before ``mode`` squashed, runs
        from before ``decode`` decoded in full)."""
        size = (section.get("image_size") or [DEFAULT_IMAGE_SIZE])[0]
        return cls(section.get("mode", "squash"), int(size), section.get("decode", "full"))

    def draft_scale(self, width: int, height: int) -> int:
        """The DCT scale denominator (8, 4, 2 or 1) a JPEG of ``width`` × ``height`` is
        decoded at: the largest that keeps the box at least ``size`` pixels on its
        shorter side, so the last resample still only shrinks (1 for ``full``).

        >>> Preprocessing().draft_scale(4032, 3024)  # box 2646 px: 1/8 leaves 330.75
        8
        >>> Preprocessing().draft_scale(533, 400), Preprocessing().draft_scale(1024, 1024)
        (1, 4)
        >>> squash = Preprocessing("squash")
        >>> squash.draft_scale(1000, 900), Preprocessing("squash", 96).draft_scale(1000, 900)
        (4, 8)
        """
        if self.decode == "full":
            return 1
        left, top, right, bottom = self.box(width, height)
        room = min(right - left, bottom - top) / self.size
        return next((s for s in (8, 4, 2) if s <= room), 1)

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
        (the crop and the resize in one step, so the pixels are interpolated once); with
        the draft decode, an integer ``reduce()`` of the box first where it is 4× the
        input or more (:data:`REDUCING_GAP`: large PNGs; a drafted JPEG is within 2×)."""
        if self.mode == "squash" and img.size == (self.size, self.size):
            return img
        return img.resize((self.size, self.size), Image.BILINEAR, box=self.box(*img.size),
                          reducing_gap=REDUCING_GAP if self.decode == "draft" else None)


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


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft_for: Preprocessing | None = None) -> Image.Image:
    """Decode image bytes into an 8-bit RGB Pillow image, EXIF orientation applied.

    Parameters
    ----------
    data : bytes
        The file's content.
    max_pixels : int
        Refuse images whose header declares more pixels than this (the declared size,
        whatever scale it is then decoded at).
    draft_for : Preprocessing, optional
        Decode a JPEG at 1/:meth:`Preprocessing.draft_scale` of its size (libjpeg's DCT
        scaling); other formats in full.

    Returns
    -------
    PIL.Image.Image
        Mode ``RGB``.

    Raises
    ------
    ImageDecodeError
        With ``reason`` one of :data:`ERROR_REASONS`.
    """
    img = _opened(data, max_pixels)
    drafted = _drafted(img, draft_for) if draft_for is not None else None
    if drafted is not None:
        return _oriented(drafted[0], _orientation(img))
    return _upright(img)


def model_input(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> Image.Image:
    """The ``size`` × ``size`` RGB image the network sees.

    A JPEG the draft decode reads at 1/s (s > 1, from :meth:`Preprocessing.draft_scale`):
    decoded at 1/s in its stored orientation, the box resampled from it at exactly 1/s of
    its place in the full frame (the drafted frame's last row and column cover only what
    is left of the photo, so the box is not recomputed from the drafted size), then the
    EXIF orientation applied to the result (both boxes, the central square and the whole
    frame, are the same region in either orientation). Anything else, and everything
    with ``decode="full"``: :func:`decode_rgb`'s image, then :meth:`Preprocessing.fit`,
    as before draft (bit-identical where no scale fits).
    """
    img = _opened(data, max_pixels)
    width, height = img.size  # the full frame's: drafting changes img.size
    drafted = _drafted(img, preprocessing)
    if drafted is None:  # not a JPEG, no scale fits, or --decode full: as before draft
        return preprocessing.fit(_upright(img))
    stored, scale = drafted
    box = tuple(v / scale for v in preprocessing.box(width, height))
    with _classifying():
        fitted = stored.resize((preprocessing.size, preprocessing.size), Image.BILINEAR,
                               box=box, reducing_gap=REDUCING_GAP)
    return _oriented(fitted, _orientation(img))


def _opened(data: bytes, max_pixels: int) -> Image.Image:
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
        raise _classified(exc) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_many_pixels",
            f"{width}x{height} = {width * height} pixels exceeds the cap of {max_pixels}",
        )
    return img


@contextmanager
def _classifying() -> Iterator[None]:
    """Pillow's errors while pixels are decoded or resampled → :class:`ImageDecodeError`."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _classified(exc) from exc


def _upright(img: Image.Image) -> Image.Image:
    """The opened image decoded whole, EXIF orientation applied, 8-bit RGB."""
    with _classifying():
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_8bit(img)
        if img.mode != "RGB":
            img = img.convert("RGB")
    return img


def _drafted(img: Image.Image,
             preprocessing: Preprocessing) -> tuple[Image.Image, int] | None:
    """The opened JPEG decoded at 1/s (s > 1), 8-bit RGB, in its stored orientation, and
    s; None when it is not drafted (another format, no scale fits, ``decode="full"``, or
    a JPEG Pillow cannot draft), and then nothing is decoded yet."""
    width, height = img.size
    scale = preprocessing.draft_scale(width, height) if img.format == "JPEG" else 1
    if scale == 1:
        return None
    with _classifying():
        if img.draft(img.mode, (width // scale, height // scale)) is None:
            return None
        img.load()
        stored = _to_8bit(img)
        if stored.mode != "RGB":
            stored = stored.convert("RGB")
    return stored, scale


#: EXIF orientation → the transpose that displays the stored image (as
#: ``ImageOps.exif_transpose`` does).
_TRANSPOSES = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def _orientation(img: Image.Image) -> int:
    with _classifying():
        return int(img.getexif().get(0x0112, 1) or 1)


def _oriented(img: Image.Image, orientation: int) -> Image.Image:
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

    Decode with Pillow (a JPEG at a reduced DCT scale unless ``decode="full"``:
    :meth:`Preprocessing.draft_scale`), apply EXIF orientation, convert to RGB, fit to the
    square input (:meth:`Preprocessing.fit`: the central crop, or the whole image
    squashed) with Pillow's bilinear filter, then ``keras.applications.mobilenet_v2.preprocess_input``
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
    img = model_input(data, max_pixels, preprocessing)
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
