"""How parallel the input pipeline runs, and tf.data's autotuning: chosen, not left to chance.

The pipeline sets its parallelism (`parallel_calls`) rather than tuning it;
tf.data's autotuner runs only where `data.parallel_calls=-1` asks for it. The
runtimes apply `without_autotune_loop` to the dataset they iterate.
"""

import os

import tensorflow as tf

from alexnet_dist.data.input_spec import InputSpec


def parallel_calls(spec: InputSpec) -> int:
    """How many images to decode at once: one per core this process may use, by default.

    Measured on 2 cores (#11, alexnet-bench-input --runs 5): with tf.data's
    autotuner, images/s moved by 11-14 % between back-to-back runs, as it settled
    on a different parallelism each time; one per core moved by 5-10 %, and was
    as fast. Two per core was up to 5 % faster for the input alone, within this
    machine's noise; one per core leaves more to the step where the two share
    the cores (CPU training).
    """
    if spec.parallel_calls == -1:
        return tf.data.AUTOTUNE
    return spec.parallel_calls or len(os.sched_getaffinity(0))


def autotuned_if_asked(ds: tf.data.Dataset, spec: InputSpec) -> tf.data.Dataset:
    """With data.parallel_calls=-1, marks `ds` (and what is built on it) for tf.data's
    autotuning loop, which `without_autotune_loop` otherwise turns off."""
    if spec.parallel_calls != -1:
        return ds
    options = tf.data.Options()
    options.autotune.enabled = True
    return ds.with_options(options)


def without_autotune_loop(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` without tf.data's autotuning loop, unless it asked for it (data.parallel_calls=-1).

    The loop is a thread per iterator that sleeps for growing periods, up to a
    minute, and destroying the iterator waits until it wakes: with the loop, the
    first step of every epoch stalled for 13-60 s on 2 cores, in every backend
    (TensorFlow 2.21; the previous epoch's iterator is destroyed there). This
    pipeline sets its parallelism rather than tuning it (`parallel_calls`), and
    prefetch(AUTOTUNE) sizes its buffer without the loop. Apply it to the
    outermost dataset, the one iterated: the runtimes do, after their own
    wrapping, since options set further in did not reliably reach the iterator.
    """
    if ds.options().autotune.enabled:
        return ds
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
