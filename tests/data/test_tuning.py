"""How parallel the input pipeline runs: one image per core by default, tf.data's autotuner
only where data.parallel_calls=-1 asks for it."""

import os

import tensorflow as tf

from alexnet_dist.data import tuning
from tests.helpers import input_spec


def test_one_decode_per_core_a_number_or_the_autotuner():
    assert tuning.parallel_calls(input_spec("x")) == len(os.sched_getaffinity(0))
    assert tuning.parallel_calls(input_spec("x", parallel_calls=3)) == 3
    assert tuning.parallel_calls(input_spec("x", parallel_calls=-1)) == tf.data.AUTOTUNE


def test_the_autotuning_loop_runs_only_where_asked():
    ds = tf.data.Dataset.range(4)
    assert tuning.without_autotune_loop(ds).options().autotune.enabled is False
    asked = tuning.autotuned_if_asked(ds, input_spec("x", parallel_calls=-1))
    assert asked.options().autotune.enabled is True
    assert tuning.without_autotune_loop(asked).options().autotune.enabled is True
    assert tuning.autotuned_if_asked(ds, input_spec("x")) is ds
