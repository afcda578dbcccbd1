"""How elastic Horovod splits a training epoch between however many workers there are."""

import tensorflow as tf


class BatchSlices(tf.distribute.InputContext):
    """A training epoch split by batch, not by file: every worker reads the one record
    order of the epoch and decodes only its slice of each global batch.

    Elastic Horovod needs it: when the number of workers changes mid-epoch, the
    survivors go on from the same place in the same order, so every image of the
    epoch is still trained on once. Each worker reads all the records (the bytes,
    not the decoding) and augments an image as a one-worker run would: its seed is
    its place in the epoch, whoever decodes it. Evaluation still splits by file.
    """

    def share(self, global_batch: int) -> tuple[int, int]:
        """[start, end) of this worker's slice; the first global_batch % workers get one more."""
        base, extra = divmod(global_batch, self.num_input_pipelines)
        worker = self.input_pipeline_id
        start = worker * base + min(worker, extra)
        return start, start + base + (worker < extra)
