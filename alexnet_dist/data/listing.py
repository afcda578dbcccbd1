"""What alexnet-convert converts: the image files of a split and their class names.

The ImageNet train layout, `root/<class name>/<image files>` (validation sorted
into class folders looks the same), or a flat folder of images whose classes a
labels file gives (val_labels.py). Files are listed in sorted order, so the same
folder gives the same list.
"""

import dataclasses
import fnmatch
import os
import unicodedata

from alexnet_dist.data import schema
from alexnet_dist.data.schema import ConversionError


@dataclasses.dataclass(frozen=True)
class Entry:
    path: str  # absolute
    relpath: str  # relative to the input root, recorded in the shard
    label: int
    class_name: str


def list_tree(input_dir: str) -> list[tuple[str, str]]:
    """[(path relative to input_dir, class name)] of a class-per-folder tree, sorted."""
    check_dir(input_dir)
    classes = sorted(
        d
        for d in os.listdir(input_dir)
        if not d.startswith(".") and os.path.isdir(os.path.join(input_dir, d))
    )
    if not classes:
        raise ConversionError(
            f"input directory {input_dir} has no class folders; "
            f"expected {input_dir}/<class>/<image>, or a flat folder with --val-labels"
        )
    items = []
    for name in classes:
        class_dir = os.path.join(input_dir, name)
        check_class_name(name, class_dir)
        items += [
            (f"{name}/{f}", name)
            for f in sorted(os.listdir(class_dir))
            if not f.startswith(".") and os.path.isfile(os.path.join(class_dir, f))
        ]
    if not items:
        raise ConversionError(f"input directory {input_dir} has class folders but no image files")
    return items


def list_flat(input_dir: str, file_classes: dict[str, str], labels_source: str):
    """[(file name, class name)] of a flat folder whose classes come from a labels file.

    `file_classes` maps file names without extension to class names; every image
    must have a class, and every labelled image must be there.
    """
    check_dir(input_dir)
    files = sorted(
        f
        for f in os.listdir(input_dir)
        if not f.startswith(".") and os.path.isfile(os.path.join(input_dir, f))
    )
    if not files:
        raise ConversionError(f"input directory {input_dir} has no image files")
    stems = {os.path.splitext(f)[0]: f for f in files}
    unlabelled = [f for stem, f in stems.items() if stem not in file_classes]
    if unlabelled:
        raise ConversionError(
            f"{len(unlabelled)} file(s) in {input_dir} have no label in {labels_source} "
            f"(first: {unlabelled[0]}); is this the split the labels describe?"
        )
    missing = sorted(stem for stem in file_classes if stem not in stems)
    if missing:
        raise ConversionError(
            f"{len(missing)} image(s) labelled in {labels_source} are not in {input_dir} "
            f"(first: {missing[0]}); is the folder complete?"
        )
    for name in sorted(set(file_classes.values())):
        check_class_name(name, labels_source)
    return [(f, file_classes[stem]) for stem, f in stems.items()]


def check_class_name(name: str, where: str) -> None:
    """ConversionError naming `where` unless `name` can be a line of labels.txt as it is:
    no control character (a newline would shift every label after it), and no leading or
    trailing whitespace (which readers of the file strip)."""
    control = [c for c in name if unicodedata.category(c) == "Cc"]
    if control:
        raise ConversionError(
            f"{where}: the class name {name!r} has a control character ({control[0]!r}); "
            "labels.txt holds one name a line, so rename it"
        )
    if name != name.strip():
        raise ConversionError(
            f"{where}: the class name {name!r} has leading or trailing whitespace; rename it"
        )


def check_dir(input_dir: str) -> None:
    if not os.path.isdir(input_dir):
        raise ConversionError(f"input directory {input_dir} does not exist or is not a directory")


def existing_split_files(output_dir: str, split: str) -> list[str]:
    if not os.path.isdir(output_dir):
        return []
    names = [f"{split}.json"] + fnmatch.filter(os.listdir(output_dir), schema.shard_pattern(split))
    return sorted(n for n in names if os.path.exists(os.path.join(output_dir, n)))
