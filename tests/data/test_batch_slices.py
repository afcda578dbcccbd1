"""Every worker's slice of each batch of a record order it shares with its group: elastic
Horovod's input (one group of all ranks), and the 2014 hybrid's over ranks (a group per
replica)."""

import numpy as np
import tensorflow as tf

from alexnet_dist.data.batch_slices import BatchSlices
from alexnet_dist.data.pipeline import make_dataset
from tests.helpers import input_spec


def test_batch_slices_of_any_worker_count_make_up_the_one_worker_epoch(shapes_records):
    # Elastic Horovod's input: with 1, 2 or 3 workers (3 does not divide the batch of 8:
    # shares of 3, 3 and 2), the workers' slices of each step, put together, are the
    # one-worker batch: the same images with the same crops and flips. So is a resume
    # mid-epoch with another worker count (skip_batches counts global batches).
    records, _ = shapes_records
    one = list(make_dataset(input_spec(records), epoch=1))
    for workers in (1, 2, 3):
        parts = [_slice(records, BatchSlices(workers, w, workers)) for w in range(workers)]
        assert [len(p) for p in parts] == [len(one) - 4] * workers
        for step, whole in enumerate(one[4:]):
            for key in ("pixels", "mirror"):
                joined = np.concatenate([p[step][0][key] for p in parts])
                np.testing.assert_array_equal(joined, whole[0][key])
            np.testing.assert_array_equal(np.concatenate([p[step][1] for p in parts]), whole[1])


def _slice(records, context: BatchSlices, global_batch=8) -> list:
    """One worker's batches of epoch 1 from step 5 on (4 global batches skipped)."""
    start, end = context.share(global_batch // context.groups)
    worker_spec = input_spec(records, batch_size=end - start, global_batch=global_batch)
    return list(make_dataset(worker_spec, epoch=1, skip_batches=4, input_context=context))


def test_groups_read_their_replicas_records_and_slice_its_batches(shapes_records):
    # 4 workers in 2 groups of 2 (two replicas of the 2014 hybrid over 2 ranks each), a
    # global batch of 16: each group's slices, put together, are what one worker of a
    # 2-worker file split reads with a batch of 8.
    records, _ = shapes_records
    for group in range(2):
        ctx = tf.distribute.InputContext(2, group, 2)
        whole = list(make_dataset(input_spec(records, batch_size=8), 1, 4, input_context=ctx))
        slices = [BatchSlices(4, 2 * group + k, group_size=2) for k in range(2)]
        assert [s.group_context().input_pipeline_id for s in slices] == [group, group]
        parts = [_slice(records, s, global_batch=16) for s in slices]
        assert [len(p) for p in parts] == [len(whole)] * 2 and len(whole) > 0
        for step, batch in enumerate(whole):
            joined = np.concatenate([p[step][0]["pixels"] for p in parts])
            np.testing.assert_array_equal(joined, batch[0]["pixels"])
            np.testing.assert_array_equal(np.concatenate([p[step][1] for p in parts]), batch[1])


def test_batch_slices_share_a_batch_out_whole():
    shares = [BatchSlices(3, w, 3).share(8) for w in range(3)]
    assert shares == [(0, 3), (3, 6), (6, 8)]
    assert [BatchSlices(4, w, 4).share(8) for w in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    # In groups of 2, a worker's slice is of its group's batch.
    assert [BatchSlices(4, w, 2).share(8) for w in range(4)] == [(0, 4), (4, 8), (0, 4), (4, 8)]
    assert BatchSlices(4, 3, 4).group_context() is None
