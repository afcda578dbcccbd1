"""`alexnet-predict`: the top-5 classes of image files, one block per file; exit code 1 when
a file or the model cannot be used, naming it."""

import pytest

from alexnet_dist.serving.predict import load, predict
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # commands in processes of their own, on the session's export


def test_prints_the_top_five_of_each_file_and_names_those_it_cannot_read(exported, tmp_path):
    folder, image, _ = exported
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = run_cli(["-m", "alexnet_dist.cli.predict", str(folder), image, str(bad)])
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0] == image
    top = predict(load(str(folder)), image)
    assert [line.split()[1] for line in lines[1:6]] == [label for label, _ in top]
    assert [line.split()[0] for line in lines[1:6]] == ["1.", "2.", "3.", "4.", "5."]
    assert abs(float(lines[1].split()[2]) - top[0][1]) < 1e-4
    assert f"{bad} is not a decodable JPEG" in out.stderr


def test_a_folder_that_is_not_a_saved_model_is_named(tmp_path):
    out = run_cli(["-m", "alexnet_dist.cli.predict", str(tmp_path), "x.jpg"])
    assert out.returncode == 1 and f"{tmp_path} is not a SavedModel" in out.stderr
