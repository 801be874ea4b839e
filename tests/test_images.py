"""Unit tests of decoding and preprocessing (no Spark)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from featurize.model.decode import ImageDecodeError
from featurize.model.preprocess import (
    Preprocessing, decode_rgb, preprocess_image, try_preprocess,
)
from tests.helpers import image_bytes, pattern_image


def reference_pixels(img: Image.Image, mode: str = "crop", size: int = 224) -> np.ndarray:
    """Reference from the documented rule: RGB → (crop: the central square of side
    shorter × 224/256) → bilinear size×size → x / 127.5 - 1."""
    img = img.convert("RGB")
    w, h = img.size
    box = (0, 0, w, h)
    if mode == "crop":
        side = min(w, h) * 0.875
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    arr = np.asarray(img.resize((size, size), Image.BILINEAR, box=box), dtype=np.float32)
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
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
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


def thirds(width: int, height: int, red_until: int, blue_from: int) -> Image.Image:
    """Red columns [0, red_until), green up to blue_from, blue after."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, :red_until, 0] = 255
    arr[:, red_until:blue_from, 1] = 255
    arr[:, blue_from:, 2] = 255
    return Image.fromarray(arr, "RGB")


def test_crop_keeps_the_centre_and_cuts_the_documented_amount():
    """A 160×100 image, red | green | blue at x = 40 and 120. The crop is the central
    87.5 × 87.5 square: x from 36.25 to 123.75, so 3.75 px of red and of blue survive on
    each side (3.75 / 87.5 of 224 = 9.6 columns), the rest is green; squash keeps all
    three bands in proportion (40 / 160 of 224 = 56 columns of red)."""
    data = image_bytes(thirds(160, 100, 40, 120), "PNG")
    crop = preprocess_image(data)
    squash = preprocess_image(data, preprocessing=Preprocessing("squash"))
    np.testing.assert_allclose(crop, reference_pixels(thirds(160, 100, 40, 120)), atol=1e-6)

    def columns(x: np.ndarray, channel: int) -> int:
        row = x[50]  # any row: the bands are vertical
        return int((row.argmax(axis=1) == channel).sum())

    assert abs(columns(crop, 0) - 224 * 3.75 / 87.5) <= 1.5
    assert abs(columns(crop, 2) - 224 * 3.75 / 87.5) <= 1.5
    assert abs(columns(crop, 1) - 224 * 80 / 87.5) <= 2
    assert abs(columns(squash, 0) - 56) <= 1.5 and abs(columns(squash, 1) - 112) <= 2
    # a portrait image is cut top and bottom the same way
    tall = preprocess_image(image_bytes(thirds(160, 100, 40, 120).rotate(90, expand=True),
                                        "PNG"))
    assert abs(int((tall[:, 50].argmax(axis=1) == 2).sum()) - 224 * 3.75 / 87.5) <= 1.5


@pytest.mark.parametrize("size", [96, 320, 512])
def test_other_sizes(size):
    img = pattern_image(5, (300, 200))
    out = preprocess_image(image_bytes(img, "PNG"), preprocessing=Preprocessing("crop", size))
    assert out.shape == (size, size, 3)
    np.testing.assert_allclose(out, reference_pixels(img, "crop", size), atol=1e-6)


def test_sizes_and_modes_outside_the_rule_are_refused():
    for bad in [("crop", 100), ("crop", 64), ("crop", 544), ("letterbox", 224)]:
        with pytest.raises(ValueError):
            Preprocessing(*bad)


def test_report_shows_what_the_model_saw(tmp_path):
    """The report's mistakes grid: the original with the crop outlined, beside the crop."""
    from featurize.review.report import model_view

    path = tmp_path / "wide.png"
    path.write_bytes(image_bytes(thirds(160, 100, 40, 120), "PNG"))
    pair = np.asarray(model_view(str(path), Preprocessing(), height=100))
    assert pair.shape == (100, 160 + 4 + 100, 3)
    assert tuple(pair[50, 80]) == (0, 255, 0)  # the original's centre, green
    assert tuple(pair[2, 10]) == (255, 0, 0)  # outside the box, red band
    box_left = round(36.25)
    assert tuple(pair[50, box_left]) == (255, 0, 0)  # the outline
    crop = pair[:, 164:]
    assert (crop[:, :, 1] == 255).mean() > 0.85  # mostly the green centre third
    squash = np.asarray(model_view(str(path), Preprocessing("squash"), height=100))[:, 164:]
    assert (squash[:, :, 0] > 200).mean() > 0.2  # squashed: the red band stays


def gradient_photo(width: int, height: int) -> Image.Image:
    """A smooth, detailed RGB frame of any size, cheap to make (no per-pixel noise)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return Image.fromarray(np.stack([
        127 + 110 * np.sin(xx / 37.0), 127 + 110 * np.cos(yy / 23.0),
        127 + 110 * np.sin((xx + 2 * yy) / 61.0)], axis=-1).astype(np.uint8), "RGB")


def expected_scale(width: int, height: int, pre: Preprocessing) -> int:
    """The documented rule, written out: the largest of 8, 4, 2 (else 1) that leaves the
    box (crop: 7/8 of the shorter side; squash: the shorter side) at least the input
    size."""
    side = min(width, height) * (0.875 if pre.mode == "crop" else 1.0)
    return next((s for s in (8, 4, 2) if side / s >= pre.size), 1)


def block_mean(img: Image.Image, s: int) -> np.ndarray:
    """``img`` shrunk by ``s`` with an s×s box average in NumPy (edges cropped)."""
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    return a[:h, :w].reshape(h // s, s, w // s, s, 3).mean(axis=(1, 3))


@pytest.mark.parametrize("size, pre", [
    ((4032, 3024), Preprocessing()), ((3024, 4032), Preprocessing()),
    ((2000, 1500), Preprocessing()), ((1024, 1024), Preprocessing()),
    ((512, 512), Preprocessing()), ((511, 511), Preprocessing()), ((533, 400), Preprocessing()),
    ((1000, 900), Preprocessing("squash")), ((1000, 900), Preprocessing("squash", 96)),
    ((4032, 3024), Preprocessing(size=512)),
])
def test_draft_decodes_a_jpeg_at_the_smallest_scale_that_holds_the_input(size, pre):
    """The decoded frame is 1/s of the photo for the s of the rule, its box never smaller
    than the input; its pixels are the full decode's, box-averaged (to ~1 grey level);
    --decode full decodes every pixel."""
    photo = gradient_photo(*size)
    data = image_bytes(photo, "JPEG", quality=92)
    s = expected_scale(*size, pre)
    drafted = decode_rgb(data, draft_for=pre)
    assert drafted.size == (-(-size[0] // s), -(-size[1] // s))
    left, top, right, bottom = pre.box(*drafted.size)
    assert min(right - left, bottom - top) >= pre.size
    full = decode_rgb(data)
    assert full.size == size
    assert decode_rgb(data, draft_for=Preprocessing(pre.mode, pre.size, "full")).size == size
    reference = block_mean(full, s)
    got = np.asarray(drafted, dtype=np.float64)[:reference.shape[0], :reference.shape[1]]
    assert np.abs(got - reference).mean() < 1.0
    # what the network sees: within a grey level of the full decode on average
    drafted_x = preprocess_image(data, preprocessing=pre)
    full_x = preprocess_image(data, preprocessing=Preprocessing(pre.mode, pre.size, "full"))
    assert np.abs(drafted_x - full_x).mean() * 127.5 < 1.0
    assert (s == 1) == np.array_equal(drafted_x, full_x)


def test_draft_keeps_the_exif_orientation():
    photo = gradient_photo(2000, 1500)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated 90° clockwise
    data = image_bytes(photo, "JPEG", quality=92, exif=exif.tobytes())
    drafted = decode_rgb(data, draft_for=Preprocessing())
    assert drafted.size == (375, 500)
    reference = block_mean(photo.transpose(Image.Transpose.ROTATE_270), 4)
    assert np.abs(np.asarray(drafted, dtype=np.float64) - reference).mean() < 1.5
    # the network's input: the box taken in the stored orientation, then turned
    upright = reference_pixels(photo.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(preprocess_image(data) - upright).mean() * 127.5 < 1.0


def test_draft_reduces_a_large_png_in_two_steps_close_to_one():
    """PNGs decode in full; the draft decode's resize reduces by an integer factor first
    (reducing_gap 2), within half a grey level of the one-step resample."""
    photo = gradient_photo(1800, 1200)
    data = image_bytes(photo, "PNG")
    two_step = preprocess_image(data)
    one_step = preprocess_image(data, preprocessing=Preprocessing(decode="full"))
    np.testing.assert_allclose(one_step, reference_pixels(photo), atol=1e-6)
    assert not np.array_equal(two_step, one_step)
    assert np.abs(two_step - one_step).mean() * 127.5 < 0.5


def test_runs_before_the_draft_decode_keep_their_name():
    """A manifest without ``decode`` was a full decode: same name, same pixels."""
    old = {"name": "pillow-exif-rgb-crop875-bilinear224-mobilenet_v2-v1", "mode": "crop",
           "image_size": [224, 224], "resample": "bilinear", "crop_fraction": 0.875}
    pre = Preprocessing.from_manifest(old)
    assert pre == Preprocessing(decode="full") and pre.name == old["name"]
    new = Preprocessing().to_manifest()
    assert new["decode"] == "draft" and Preprocessing.from_manifest(new) == Preprocessing()
    assert new["name"] != old["name"]
    with pytest.raises(ValueError, match="decode"):
        Preprocessing(decode="fast")


@pytest.mark.parametrize("orientation", [2, 3, 5, 6, 7, 8])
def test_an_undrafted_jpeg_is_decoded_as_before_whatever_its_orientation(orientation):
    """Where no scale fits (here 400×300), the draft decode is the full decode, bit for
    bit, EXIF orientation included (turned before the resample, as always)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = image_bytes(gradient_photo(400, 300), "JPEG", quality=92, exif=exif.tobytes())
    assert np.array_equal(preprocess_image(data),
                          preprocess_image(data, preprocessing=Preprocessing(decode="full")))
