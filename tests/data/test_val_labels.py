"""Validation labels from the ILSVRC-2012 devkit, Kaggle's CSV or a text file."""

import pytest

from alexnet_dist.data import schema, val_labels
from alexnet_dist.data.converter import convert_tree
from alexnet_dist.data.schema import ConversionError
from tests.helpers import WNIDS, read_records


@pytest.mark.parametrize("source", ["devkit", "kaggle", "pairs"])
def test_flat_validation_gets_the_train_label_of_its_synset(imagenet, tmp_path, source):
    root, truth = imagenet
    out = tmp_path / "records"
    convert_tree(str(root / "train"), str(out), "train", 3, workers=1)
    labels_path = {
        "devkit": root / "ILSVRC2012_devkit_t12",
        "kaggle": root / "LOC_val_solution.csv",
        "pairs": tmp_path / "val.txt",
    }[source]
    if source == "pairs":
        labels_path.write_text(
            "".join(f"ILSVRC2012_val_{n:08d}.JPEG {w}\n" for n, w in enumerate(truth, 1))
        )
    file_classes = val_labels.read(str(labels_path))
    report = convert_tree(
        str(root / "val"), str(out), "val", 2, workers=1,
        file_classes=file_classes, labels_source=str(labels_path),
    )  # fmt: skip
    assert report["num_examples"] == 6
    assert schema.read_labels(str(out)) == WNIDS  # from train, in sorted WNID order
    for r in read_records(out, "val"):
        n = int(r["file"].split("_")[-1].split(".")[0])
        assert r["text"] == truth[n - 1] and r["label"] == WNIDS.index(truth[n - 1])
        assert r["pixels"][..., r["label"]].mean() > 200  # the image is that class's colour


def test_flat_validation_with_missing_or_extra_labels_is_named(imagenet, tmp_path):
    root, truth = imagenet
    labels = val_labels.read(str(root / "LOC_val_solution.csv"))
    del labels["ILSVRC2012_val_00000004"]
    with pytest.raises(ConversionError, match="ILSVRC2012_val_00000004.JPEG"):
        convert_tree(str(root / "val"), str(tmp_path / "a"), "val", 1, file_classes=labels)
    labels = {**val_labels.read(str(root / "LOC_val_solution.csv")), "ILSVRC2012_val_00000099": "x"}
    with pytest.raises(ConversionError, match="not in .*first: ILSVRC2012_val_00000099"):
        convert_tree(str(root / "val"), str(tmp_path / "b"), "val", 1, file_classes=labels)
    with pytest.raises(ConversionError, match="is not an ILSVRC-2012 devkit"):
        val_labels.read(str(tmp_path))
