"""The top classes of image files from an exported model, and files it cannot use."""

import pytest

from alexnet_dist.serving.predict import PredictError, load, predict

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
