"""The one interface of every backend."""

import tensorflow as tf

from alexnet_dist.data.pipeline import make_dataset
from tests.helpers import input_spec


def test_runtimes_iterate_the_input_without_the_autotune_loop_unless_asked(shapes_records):
    # The loop's thread made destroying each epoch's iterator wait up to a minute
    # (tuning.without_autotune_loop); data.parallel_calls=-1 asks for autotuning.
    from alexnet_dist.config import DistributeConfig
    from alexnet_dist.distribute.backends import create_runtime

    records, _ = shapes_records
    runtime = create_runtime(DistributeConfig())
    for parallel_calls, autotuned in ((0, False), (2, False), (-1, True)):
        train = input_spec(records, training=True, parallel_calls=parallel_calls)
        iterated = runtime.distribute_dataset(lambda ctx, s=train: make_dataset(s))
        assert iterated.options().autotune.enabled is autotuned, parallel_calls
        assert next(iter(iterated))[0]["pixels"].dtype == tf.uint8
