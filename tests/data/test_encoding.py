"""One image file -> RGB JPEG bytes: RGB JPEGs kept byte for byte, anything else re-encoded
and reported, unreadable files named."""

import io
import pickle

import pytest
from PIL import Image

from alexnet_dist.data.encoding import BadImageError, load_rgb_jpeg
from tests.helpers import write_image


def test_an_rgb_jpeg_is_kept_as_it_is(tmp_path):
    path = tmp_path / "a.jpg"
    write_image(str(path), (10, 20, 30), size=(40, 30))
    encoded, height, width, repair = load_rgb_jpeg(str(path))
    assert encoded == path.read_bytes() and (height, width, repair) == (30, 40, None)


@pytest.mark.parametrize(
    "fmt, mode, repair",
    [("PNG", "RGB", "PNG RGB -> RGB JPEG"), ("JPEG", "L", "JPEG L -> RGB JPEG"),
     ("JPEG", "CMYK", "JPEG CMYK -> RGB JPEG")],
)  # fmt: skip
def test_other_images_are_re_encoded_as_rgb_jpeg_and_reported(tmp_path, fmt, mode, repair):
    path = tmp_path / "x.JPEG"
    write_image(str(path), (90, 40, 10, 0), fmt=fmt, mode=mode)
    encoded, height, width, reported = load_rgb_jpeg(str(path))
    assert reported == repair
    with Image.open(io.BytesIO(encoded)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (width, height))


def test_resize_scales_the_shorter_side(tmp_path):
    path = tmp_path / "wide.jpg"
    write_image(str(path), (1, 2, 3), size=(400, 300))
    encoded, height, width, repair = load_rgb_jpeg(str(path), resize=60)
    assert (height, width, repair) == (60, 80, None)  # resized, not repaired
    with Image.open(io.BytesIO(encoded)) as image:
        assert image.size == (80, 60)


def test_a_file_that_is_not_an_image_is_named_and_survives_pickling(tmp_path):
    path = tmp_path / "notes.JPEG"
    path.write_text("not an image")
    with pytest.raises(BadImageError, match=f"cannot read image {path}:.*--skip-bad") as info:
        load_rgb_jpeg(str(path))
    again = pickle.loads(pickle.dumps(info.value))  # raised in a converter worker
    assert (again.path, again.reason) == (info.value.path, info.value.reason)
