"""Preprocessing: bytes in, a MobileNetV2-ready array out.

Everything here is pure Python/NumPy/Pillow so it can be tested without Spark. The
single preprocessing function, :func:`preprocess_image`, is what the Spark UDF calls
for every file; :attr:`Preprocessing.name` names it in each run's manifest. Opening and
refusing a file is :mod:`featurize.model.decode`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from featurize.config import (
    DECODES, DEFAULT_IMAGE_SIZE, DEFAULT_MAX_PIXELS, IMAGE_SIZES, MODES, FeaturizeConfig,
)
from featurize.model.decode import (
    ImageDecodeError, classifying, drafted, opened, orientation, oriented, upright,
)

#: Pillow's ``reducing_gap`` of the draft decode: where the box is at least twice this
#: times the input, a ``reduce()`` by an integer factor first, leaving the bilinear step
#: a shrink of at least this factor.
REDUCING_GAP = 2.0


#: The crop keeps this share of the shorter side (ImageNet's 224 of 256).
CROP_FRACTION = 224 / 256


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
    def of(cls, config: FeaturizeConfig) -> "Preprocessing":
        """What a featurize configuration asks for (``--preprocess``, ``--image-size``,
        ``--decode``)."""
        return cls(config.preprocess, config.image_size, config.decode)

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
    img = opened(data, max_pixels)
    stored = _drafted(img, draft_for) if draft_for is not None else None
    if stored is not None:
        return oriented(stored[0], orientation(img))
    return upright(img)


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
    img = opened(data, max_pixels)
    width, height = img.size  # the full frame's: drafting changes img.size
    result = _drafted(img, preprocessing)
    if result is None:  # not a JPEG, no scale fits, or --decode full: as before draft
        return preprocessing.fit(upright(img))
    stored, scale = result
    box = tuple(v / scale for v in preprocessing.box(width, height))
    with classifying():
        fitted = stored.resize((preprocessing.size, preprocessing.size), Image.BILINEAR,
                               box=box, reducing_gap=REDUCING_GAP)
    return oriented(fitted, orientation(img))


def _drafted(img: Image.Image,
             preprocessing: Preprocessing) -> tuple[Image.Image, int] | None:
    """:func:`~featurize.model.decode.drafted` at the scale ``preprocessing`` allows for
    this JPEG (:meth:`Preprocessing.draft_scale`; 1, not drafted, for other formats)."""
    width, height = img.size
    return drafted(img, preprocessing.draft_scale(width, height) if img.format == "JPEG" else 1)


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
