"""Limits on image files from other people, checked before anything is decoded."""

import pytest

from alexnet_dist.data import converter
from alexnet_dist.data.image_limits import ImageLimits, ImageTooLargeError
from alexnet_dist.data.schema import ConversionError
from tests.helpers import write_image, write_png_bomb

pytestmark = pytest.mark.security


def test_the_pixels_a_header_declares_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "cat.png"
    write_png_bomb(bomb)
    limits = ImageLimits()
    data = limits.read(str(bomb))
    assert len(data) < 200_000  # 144 megapixels in 140 KB
    with pytest.raises(ImageTooLargeError, match=f"{bomb}: 12000x12000 = 144,000,000 pixels, "
                       "above the limit of 89,478,485"):  # fmt: skip
        limits.check_header(str(bomb), data)
    ImageLimits(max_pixels=144_000_000).check_header(str(bomb), data)  # at the limit: taken


def test_a_file_above_the_byte_limit_is_refused_before_it_is_read(tmp_path):
    photo = tmp_path / "photo.jpg"
    write_image(photo, (40, 30, 20), size=(40, 30))
    size = photo.stat().st_size
    assert ImageLimits(max_bytes=size).read(str(photo)) == photo.read_bytes()
    with pytest.raises(ImageTooLargeError, match=f"{photo}: {size:,} bytes, above the limit of"):
        ImageLimits(max_bytes=size - 1).read(str(photo))


def test_limits_must_be_positive():
    with pytest.raises(ConversionError, match="image limits must be positive"):
        ImageLimits(max_pixels=0)


def test_the_converter_runs_no_more_workers_than_memory_holds(monkeypatch):
    # Each worker may decode an image at the pixel limit: 9 bytes a pixel at worst, and
    # it holds Python, Pillow and TensorFlow besides.
    limits = ImageLimits(max_pixels=100_000_000)
    per_worker = 900_000_000 + converter.WORKER_BASE_BYTES
    monkeypatch.setattr(converter, "available_memory", lambda: 3 * per_worker + 1)
    monkeypatch.setattr(converter.os, "cpu_count", lambda: 8)
    assert converter.default_workers(limits) == 3
    monkeypatch.setattr(converter, "available_memory", lambda: 100 * 1000**2)
    assert converter.default_workers(limits) == 1
    monkeypatch.setattr(converter, "available_memory", lambda: None)
    assert converter.default_workers(limits) == 8
