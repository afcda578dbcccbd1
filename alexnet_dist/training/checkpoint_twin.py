"""The one-device form of a model spread over devices: what its checkpoints hold.

The 2014 hybrid (models/owt_hybrid.py) splits fc6, fc7 and fc8 by units over K
devices or K Horovod ranks, each shard with its own momenta. Its checkpoints are written as the
one-device network's, so that a run on K devices resumes from a one-device
run's checkpoint and the reverse, on any K, and alexnet-eval, -export and
-predict read them like any other. A twin of the one-device network and of its
optimizer lives in host memory: before a save the hybrid's variables are
gathered into it, after a restore they are scattered back. It costs one more
copy of the weights and momenta in host memory (489 MB at full size) and a
copy each way per checkpoint.
"""

from collections.abc import Callable

import keras
import numpy as np

from alexnet_dist.models import build_alexnet
from alexnet_dist.models.owt_hybrid import (
    SplitOWT,
    gather,
    one_device_groups,
    scatter,
    shard_sizes,
)


def _momentum(optimizer: keras.optimizers.Optimizer, variable):
    return optimizer.momentums[optimizer._get_variable_index(variable)]


def rng_states(model: keras.Model) -> list:
    """Dropout's random states (not among the model's weights), in layer order."""
    return [v for v in model.non_trainable_variables if "seed_generator" in v.path]


class OneDeviceTwin:
    """`model` (the one-device network) and `optimizer`, mirroring a hybrid's state.

    Over Horovod ranks (RankShardOWT) each rank holds one shard of each fully connected
    variable: `gather` collects the others' from its group (a collective: every rank
    calls it), `scatter` keeps this rank's columns.
    """

    def __init__(self, hybrid: SplitOWT, optimizer, twin: keras.Model, twin_optimizer):
        self.model, self.optimizer = twin, twin_optimizer
        self._ranks = getattr(hybrid, "group", None)
        groups = one_device_groups(hybrid)
        # (one-device variable, the hybrid's variables that hold it)
        self._groups = list(zip(twin.trainable_variables, groups, strict=True))
        if twin_optimizer.momentum:
            self._groups += [
                (_momentum(twin_optimizer, one), [_momentum(optimizer, v) for v in group])
                for one, group in zip(twin.trainable_variables, groups, strict=True)
            ]
        self._same = [(twin_optimizer.iterations, optimizer.iterations)]
        self._same += list(zip(rng_states(twin), rng_states(hybrid), strict=True))

    @property
    def variables(self) -> list:
        return self.model.variables + self.optimizer.variables

    @property
    def rng_states(self) -> list:
        return rng_states(self.model)

    def gather(self) -> None:
        """The hybrid's state into the twin (before a save)."""
        for one, group in self._groups:
            value = gather(group)
            if value.shape[-1] != one.shape[-1]:  # the other ranks hold the rest
                value = self._ranks.gather_last_axis(value)
            one.assign(value)
        for one, live in self._same:
            one.assign(live)
        if self._ranks is not None:
            self._ranks.barrier()

    def scatter(self) -> None:
        """The twin's state into the hybrid (after a restore)."""
        for one, group in self._groups:
            value = np.asarray(one.numpy())
            if sum(v.shape[-1] for v in group) != value.shape[-1]:  # this rank's columns
                sizes = shard_sizes(value.shape[-1], self._ranks.size)
                start = sum(sizes[: self._ranks.index])
                value = value[..., start : start + sizes[self._ranks.index]]
            scatter(group, value)
        for one, live in self._same:
            live.assign(one)


def one_device_twin(
    model: keras.Model, optimizer, make_optimizer: Callable[[keras.Model], object]
) -> OneDeviceTwin | None:
    """A twin for a model spread over devices (None for any other model); `make_optimizer`
    builds the run's optimizer for a model."""
    if not isinstance(model, SplitOWT):
        return None
    with keras.device("/cpu:0"):  # host memory, not the first accelerator's
        twin = build_alexnet(
            "owt", model.num_classes, model.image_size, model.width, model.dropout_rate,
            init=model.init,
        )  # fmt: skip
        twin_optimizer = make_optimizer(twin)
    return OneDeviceTwin(model, optimizer, twin, twin_optimizer)
