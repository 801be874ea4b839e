"""Unit tests of decoding and preprocessing (no Spark)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from featurize.images import (
    IMAGE_SIZE, ImageDecodeError, decode_rgb, preprocess_image, try_preprocess,
)
from tests.helpers import image_bytes, pattern_image


def reference_pixels(img: Image.Image) -> np.ndarray:
    """Independent reference: RGB → bilinear 224 → x / 127.5 - 1."""
    arr = np.asarray(img.convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32)
    return arr / 127.5 - 1.0


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_preprocess_matches_independent_reference():
    img = pattern_image(3, (100, 100))
    data = image_bytes(img, "PNG")
    out = preprocess_image(data)
    assert out.shape == (*IMAGE_SIZE, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference_pixels(img), atol=1e-6)
    assert -1.0 <= out.min() < -0.5 and 0.5 < out.max() <= 1.0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA"])
def test_other_modes_are_converted_to_rgb(mode):
    rgb = pattern_image(5)
    img = rgb.convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    out = preprocess_image(image_bytes(img, fmt))
    expected = reference_pixels(Image.open(__import__("io").BytesIO(image_bytes(img, fmt))))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_16bit_grayscale_is_rescaled_not_saturated():
    gray8 = np.asarray(pattern_image(7).convert("L"))
    img16 = Image.fromarray(gray8.astype(np.uint16) * 257)
    assert img16.mode.startswith("I;16")
    out = preprocess_image(image_bytes(img16, "PNG"))
    expected = reference_pixels(Image.fromarray(gray8, "L"))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # The trap: convert("RGB") on I;16 clips, so nearly every pixel would be white.
    assert (out > 0.99).mean() < 0.5


@pytest.mark.parametrize("orientation, transpose", [
    (6, Image.Transpose.ROTATE_270),  # stored sideways: rotate 90° clockwise to display
    (8, Image.Transpose.ROTATE_90),
    (3, Image.Transpose.ROTATE_180),
])
def test_exif_orientation_is_applied(orientation, transpose):
    img = pattern_image(9, (120, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image_bytes(img, "PNG", exif=exif.tobytes())
    decoded = np.asarray(decode_rgb(stored), dtype=np.int16)
    expected = np.asarray(img.transpose(transpose), dtype=np.int16)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).max() == 0  # PNG: lossless, exactly the rotation


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is a text file saved as .jpg\n" * 10, "not_an_image"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not_an_image"),
        (image_bytes(pattern_image(1), "JPEG")[:400], "truncated"),
        (image_bytes(pattern_image(1), "PNG")[:300], "truncated"),
        (png_header_only(200_000, 200_000), "too_many_pixels"),
    ],
    ids=["empty", "text", "random-bytes", "truncated-jpeg", "truncated-png", "lying-header"],
)
def test_bad_files_get_a_reason(data, reason):
    with pytest.raises(ImageDecodeError) as info:
        preprocess_image(data)
    assert info.value.reason == reason
    result = try_preprocess(data)
    assert result.array is None and result.reason == reason and result.detail


def test_pixel_cap_is_configurable():
    data = image_bytes(pattern_image(2, (100, 100)), "PNG")
    assert try_preprocess(data, max_pixels=100 * 100).array is not None
    assert try_preprocess(data, max_pixels=100 * 100 - 1).reason == "too_many_pixels"
