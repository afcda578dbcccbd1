"""The top classes of image files from an exported model, and files it cannot use."""

import pytest
import tensorflow as tf

from alexnet_dist.data.image_limits import ImageLimits
from alexnet_dist.serving.predict import PredictError, limits, load, predict
from tests.helpers import write_image, write_png_bomb

pytestmark = pytest.mark.slow  # the session's export


def test_the_top_classes_most_likely_first(exported):
    folder, image, _ = exported
    top = predict(load(str(folder)), image)
    assert len(top) == 5
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert len({label for label, _ in top}) == 5


def test_files_it_cannot_use_are_named(exported, tmp_path):
    folder, _, _ = exported
    serve = load(str(folder))
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(PredictError, match=f"{bad} is not a decodable JPEG"):
        predict(serve, str(bad))
    with pytest.raises(PredictError, match=f"cannot read {tmp_path}/missing.jpg"):
        predict(serve, str(tmp_path / "missing.jpg"))
    with pytest.raises(PredictError, match=f"{tmp_path} is not a SavedModel"):
        load(str(tmp_path))


@pytest.mark.security
def test_a_decompression_bomb_is_refused_before_it_is_decoded(exported, tmp_path):
    # 140 KB that declare 12000 x 12000 pixels: alexnet-predict refuses it from the header,
    # and so does the serving function itself (TF Serving's path), before decoding.
    folder, _, _ = exported
    serve = load(str(folder))
    bomb = tmp_path / "bomb.png"
    write_png_bomb(bomb)
    with pytest.raises(PredictError, match=f"refusing {bomb}: 12000x12000 = 144,000,000 pixels"):
        predict(serve, str(bomb), limits(str(folder)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="above the limit of 89478485 pix"):
        serve(image_bytes=tf.constant([bomb.read_bytes()]))
    # Each format's header is read: a small PNG, GIF and BMP of 7x5 pass, and with a
    # limit of 34 pixels only the model's own check stands between them and the decoder.
    for fmt in ["PNG", "GIF", "BMP"]:
        path = tmp_path / f"small.{fmt.lower()}"
        write_image(str(path), (10, 20, 30), fmt=fmt, size=(7, 5))
        assert len(predict(serve, str(path))) == 5
        with pytest.raises(PredictError, match=f"refusing {path}: 7x5 = 35 pixels"):
            predict(serve, str(path), ImageLimits(max_pixels=34))


@pytest.mark.security
def test_the_serving_function_reads_each_formats_header(exported, tmp_path):
    from alexnet_dist.serving.export import declared_pixels

    for fmt, size in [("JPEG", (640, 480)), ("PNG", (12, 7)), ("GIF", (300, 2)), ("BMP", (5, 9))]:
        path = tmp_path / f"image.{fmt.lower()}"
        write_image(str(path), (10, 20, 30), fmt=fmt, size=size)
        assert int(declared_pixels(tf.constant(path.read_bytes()))) == size[0] * size[1], fmt
    assert int(declared_pixels(tf.constant(b"short"))) == 0
