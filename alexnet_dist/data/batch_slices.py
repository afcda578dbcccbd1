"""A training epoch split by batch between the workers that share one record order.

Two kinds of job read their training input this way:

- elastic Horovod: every rank reads the one record order of the epoch and decodes
  only its slice of each global batch. When the number of ranks changes mid-epoch,
  the survivors go on from the same place in the same order, so every image of the
  epoch is still trained on once.
- the 2014 hybrid over Horovod ranks: the K ranks of one replica read the replica's
  record order, as one device would, and each takes its slice of the replica's
  batch. So the hybrid trains on the batches a one-device run trains on.

Each worker reads all the records of its group (the bytes, not the decoding) and
augments an image as a one-worker run would: its seed is its place in the epoch,
whoever decodes it. Evaluation still splits by file, over every worker.
"""

import tensorflow as tf


class BatchSlices(tf.distribute.InputContext):
    """Worker `worker` of `workers`, in groups of `group_size` consecutive workers that share
    one record order (all of them by default).

    As an InputContext it is the usual split over every worker (evaluation's);
    `group_context` is the split of the training records between the groups.
    """

    def __init__(self, workers: int, worker: int, group_size: int | None = None):
        super().__init__(num_input_pipelines=workers, input_pipeline_id=worker,
                         num_replicas_in_sync=workers)  # fmt: skip
        self.group_size = group_size or workers
        if workers % self.group_size:
            raise ValueError(f"{workers} workers do not make groups of {self.group_size}")

    @property
    def groups(self) -> int:
        return self.num_input_pipelines // self.group_size

    def group_context(self) -> tf.distribute.InputContext | None:
        """The training records' split between the groups (None: one group reads them all)."""
        if self.groups == 1:
            return None
        group = self.input_pipeline_id // self.group_size
        return tf.distribute.InputContext(self.groups, group, self.groups)

    def share(self, batch: int) -> tuple[int, int]:
        """[start, end) of this worker's slice of its group's `batch`; the first
        batch % group_size workers of the group take one more."""
        base, extra = divmod(batch, self.group_size)
        worker = self.input_pipeline_id % self.group_size
        start = worker * base + min(worker, extra)
        return start, start + base + (worker < extra)
