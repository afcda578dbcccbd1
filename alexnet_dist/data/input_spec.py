"""How to read one split of a converted dataset: the reader's whole configuration."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How to read one split of a converted dataset."""

    data_dir: str
    split: str
    batch_size: int  # per worker
    crop_size: int
    resize_size: int
    training: bool
    seed: int = 0
    shuffle_buffer: int = 10_000
    deterministic: bool = True
    parallel_calls: int = 0  # images decoded at once: 0 one per core, -1 tf.data's autotuner
    lighting_std: float = 0.0  # training: the paper's PCA colour noise (0.1); 0 is off
    train_crop: str = "paper"  # "paper": crop of the resized image; "inception": random-resized
    eval_crops: int = 1  # evaluation: 1 (centre) or 10 (the paper's corners, centre, flips)
    # Training: the tf.data service dispatcher (grpc://host:port) that runs the pipeline,
    # and a name unique to the run for its jobs; None reads and decodes in this process.
    service: str | None = None
    service_job: str = "alexnet"
    # Keep this worker's records (the JPEG bytes) in memory after the first pass, so
    # later epochs and evaluations do not read the files again. The shard order is
    # then fixed; the shuffle buffer does the mixing. Needs RAM for the worker's share.
    cache: bool = False
    # The label map's size: a record whose label is outside [0, num_classes) is an
    # error naming it (shard_errors.py); 0 leaves labels unchecked.
    num_classes: int = 0
    # Training: the batch of all workers together, which `BatchSlices` splits.
    global_batch: int = 0
