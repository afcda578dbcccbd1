"""The classes of ILSVRC-2012 validation images kept in one flat folder, from the file users have.

Three sources, told apart by what the path is:

- the devkit folder (`ILSVRC2012_devkit_t12/`): `data/ILSVRC2012_validation_ground_truth.txt`
  holds one ILSVRC2012_ID (1-1000) per image, in file-number order, and
  `data/meta.mat` maps those IDs to synset IDs (WNIDs). The devkit's ID order is
  not the sorted-WNID order of the train folders: labels are assigned from
  WNIDs, never from these IDs, so train and validation agree.
- Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString` where the
  prediction string starts with the image's WNID.
- any text file of `<file name> <class name>` lines.

Each gives {file name without extension: class name}.
"""

import csv
import os

from alexnet_dist.data.schema import ConversionError

DEVKIT_TRUTH = os.path.join("data", "ILSVRC2012_validation_ground_truth.txt")
DEVKIT_META = os.path.join("data", "meta.mat")


def read(path: str) -> dict[str, str]:
    """{file stem: class name} from a devkit folder, a Kaggle CSV or a two-column text file."""
    if os.path.isdir(path):
        return read_devkit(path)
    if not os.path.isfile(path):
        raise ConversionError(f"validation labels {path} do not exist")
    with open(path, newline="") as f:
        first = f.readline()
    if first.strip().replace(" ", "").startswith("ImageId,PredictionString"):
        return read_kaggle_csv(path)
    return read_pairs(path)


def read_devkit(devkit: str) -> dict[str, str]:
    """The devkit's ground truth, as WNIDs, keyed by ILSVRC2012_val_%08d."""
    if os.path.basename(os.path.normpath(devkit)) == "data":
        devkit = os.path.dirname(os.path.normpath(devkit))
    truth, meta = os.path.join(devkit, DEVKIT_TRUTH), os.path.join(devkit, DEVKIT_META)
    for needed in (truth, meta):
        if not os.path.isfile(needed):
            raise ConversionError(f"{needed} not found: {devkit} is not an ILSVRC-2012 devkit")
    wnids = _devkit_wnids(meta)
    labels = {}
    with open(truth) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                wnid = wnids[int(line)]
            except (ValueError, KeyError):
                raise ConversionError(
                    f"{truth} line {number}: {line.strip()!r} is not an ILSVRC2012_ID in {meta}"
                ) from None
            labels[f"ILSVRC2012_val_{number:08d}"] = wnid
    return labels


def _devkit_wnids(meta: str) -> dict[int, str]:
    """{ILSVRC2012_ID: WNID} of the leaf synsets (the 1000 classes) in meta.mat."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
    except (OSError, ValueError, KeyError) as e:
        raise ConversionError(f"cannot read the synsets of {meta}: {e}") from None
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}


def read_kaggle_csv(path: str) -> dict[str, str]:
    labels = {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.DictReader(f), 2):
            try:
                labels[row["ImageId"].strip()] = row["PredictionString"].split()[0]
            except (KeyError, IndexError, AttributeError):
                raise ConversionError(
                    f"{path} line {number}: expected ImageId,PredictionString with a WNID first"
                ) from None
    return labels


def read_pairs(path: str) -> dict[str, str]:
    labels = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ConversionError(
                    f"{path} line {number}: expected '<file name> <class name>', "
                    f"got {line.strip()!r}"
                )
            labels[os.path.splitext(parts[0])[0]] = parts[1]
    return labels
