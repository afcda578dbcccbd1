"""The one-device form of a replica's model: what its checkpoints hold, whatever the layout.

Checkpoints are written and read in the form of the one-device network, so that a
run resumes from any other layout's checkpoint, and alexnet-eval, -export and
-predict read every run's checkpoints alike. Every layout reaches that form
through one interface, `OneDeviceForm`:

- the one-device network, and the paper's towers on two devices, are their own
  one-device form (`OneDeviceForm` itself): the towers' variables are the network's,
  wherever they live;
- the 2014 hybrid (distribute/owt_hybrid.py) splits fc6, fc7 and fc8 by units over
  K devices or K Horovod ranks, each shard with its own momenta. Its form is a twin
  of the one-device network and of its optimizer in host memory (`OneDeviceTwin`):
  before a save the hybrid's variables are gathered into it, after a restore they
  are scattered back. It costs one more copy of the weights and momenta in host
  memory (489 MB at full size) and a copy each way per checkpoint.
"""

import keras
import numpy as np

from alexnet_dist.models.owt_shards import SplitOWT, one_device_groups, shard_sizes


def rng_states(model: keras.Model) -> list:
    """Dropout's random states (not among the model's weights), in layer order."""
    return [v for v in model.non_trainable_variables if "seed_generator" in v.path]


class OneDeviceForm:
    """A replica's model and optimizer in the one-device network's form.

    `model` and `optimizer` are what a checkpoint holds; `gather` brings the live
    state into them (before a save, or a broadcast of rank 0's state), `scatter`
    takes theirs back (after a restore, or the broadcast). This base class is the
    network that is its own form: both are no-ops.
    """

    def __init__(self, model: keras.Model, optimizer):
        self.model, self.optimizer = model, optimizer
        # The live optimizer's step count, which the form's catches up with at `gather`.
        self.iterations = optimizer.iterations

    @property
    def variables(self) -> list:
        """Every variable of the form: the same on every replica after `prepare`."""
        return self.model.variables + self.optimizer.variables

    @property
    def rng_states(self) -> list:
        return rng_states(self.model)

    def gather(self) -> None:
        """The live state into the form (a collective over ranks: every rank calls it)."""

    def scatter(self) -> None:
        """The form's state into the live variables."""


class OneDeviceTwin(OneDeviceForm):
    """`twin` (the one-device network) and `twin_optimizer`, mirroring a hybrid's state.

    Over Horovod ranks (RankShardOWT) each rank holds one shard of each fully connected
    variable: `gather` collects the others' from its group (a collective: every rank
    calls it), `scatter` keeps this rank's columns.
    """

    def __init__(self, hybrid: SplitOWT, optimizer, twin: keras.Model, twin_optimizer):
        super().__init__(twin, twin_optimizer)
        self.iterations = optimizer.iterations
        self._ranks = getattr(hybrid, "group", None)
        groups = one_device_groups(hybrid)
        # (one-device variable, the hybrid's variables that hold it)
        self._groups = list(zip(twin.trainable_variables, groups, strict=True))
        # The optimizer's slots (momenta, velocities) split as their variables are.
        for one, group in zip(twin.trainable_variables, groups, strict=True):
            for k, slot in enumerate(twin_optimizer.slots_of(one)):
                self._groups.append((slot, [optimizer.slots_of(v)[k] for v in group]))
        self._same = [(twin_optimizer.iterations, optimizer.iterations)]
        self._same += list(zip(rng_states(twin), rng_states(hybrid), strict=True))

    def gather(self) -> None:
        for one, group in self._groups:
            value = join_split(group)
            if value.shape[-1] != one.shape[-1]:  # the other ranks hold the rest
                value = self._ranks.gather_last_axis(value)
            one.assign(value)
        for one, live in self._same:
            one.assign(live)
        if self._ranks is not None:
            self._ranks.barrier()

    def scatter(self) -> None:
        for one, group in self._groups:
            assign_split(group, np.asarray(one.numpy()), self._ranks)
        for one, live in self._same:
            live.assign(one)


def join_split(group: list) -> np.ndarray:
    """A one-device variable's value from the variables of a hybrid that hold it."""
    return np.concatenate([np.asarray(v.numpy()) for v in group], axis=-1)


def assign_split(group: list, value: np.ndarray, ranks=None) -> None:
    """Assigns a one-device variable's value to the variables of a hybrid that hold it,
    split along the last axis (the units); over `ranks`, this rank's columns of it."""
    if ranks is not None and sum(v.shape[-1] for v in group) != value.shape[-1]:
        sizes = shard_sizes(value.shape[-1], ranks.size)
        start = sum(sizes[: ranks.index])
        value = value[..., start : start + sizes[ranks.index]]
    sizes = [v.shape[-1] for v in group]
    if value.shape[:-1] != tuple(group[0].shape[:-1]) or value.shape[-1] != sum(sizes):
        raise ValueError(
            f"a value of shape {value.shape} does not split into {[tuple(v.shape) for v in group]}"
        )
    for v, piece in zip(group, np.split(value, np.cumsum(sizes)[:-1], axis=-1), strict=True):
        v.assign(piece)


def load_one_device(hybrid: SplitOWT, network: keras.Model) -> None:
    """Gives `hybrid` the weights and dropout states of the one-device `network`."""
    groups = one_device_groups(hybrid)
    ranks = getattr(hybrid, "group", None)
    for one, group in zip(network.trainable_variables, groups, strict=True):
        assign_split(group, np.asarray(one.numpy()), ranks)
    for one, live in zip(rng_states(network), rng_states(hybrid), strict=True):
        live.assign(one)
