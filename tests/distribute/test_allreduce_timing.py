"""How long the gradient all-reduce takes on its own, through the runtime's collective."""

import re

import numpy as np

from alexnet_dist.distribute.allreduce_timing import time_all_reduce
from tests.distribute.helpers import network


def test_times_the_models_gradients_over_the_replicas(mirrored_runtime):
    runtime = mirrored_runtime
    with runtime.scope():
        model = network("paper")
    timing = time_all_reduce(runtime, model.trainable_variables, repeats=3)
    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert timing.num_bytes == 4 * parameters and timing.replicas == 2
    assert timing.seconds > 0
    described = timing.describe()
    assert re.fullmatch(
        r"gradient all-reduce over 2 replicas: [\d.]+ MB in [\d.]+ ms \([\d.]+ GB/s\)", described
    ), described
