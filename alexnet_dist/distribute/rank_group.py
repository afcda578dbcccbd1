"""The K Horovod ranks of one replica of the 2014 hybrid, and the exchanges between them.

With `distribute.ranks_per_replica=K`, K consecutive ranks (one GPU each) make one
replica of the 2014 hybrid (owt_hybrid.py): each runs the convolutions on its own
images and holds 1/K of the units of fc6, fc7 and fc8. The model calls the
exchanges here; each is a Horovod collective among the group's ranks with the
gradient that the scheme needs:

- `gather_rows`: every rank's rows (its images' conv features), in rank order, on
  every rank. Backward: the sum over the ranks of each rank's rows' gradient, sent
  to it (a reduce-scatter). Horovod's own gradient of allgather averages instead,
  which is right only when every rank computes the same loss.
- `gather_columns`: every rank's columns (its units of a layer) on every rank;
  backward a reduce-scatter likewise.
- `rows_home`: each rank's columns of the logits, for every rank's rows, sent to the
  rank whose images they are (an all-to-all); its gradient is the reverse all-to-all.

Replicas (groups) are data-parallel among themselves: a conv gradient is summed over
all ranks, a shard's over the ranks that hold the same shard in the other replicas.
"""

import tensorflow as tf


class RankGroup:
    """This rank's group (ranks [r K, (r + 1) K) for replica r), its place in it, and the
    ranks of the other groups that hold the same shard."""

    def __init__(self, hvd, ranks_per_replica: int):
        size, rank = hvd.size(), hvd.rank()
        k = ranks_per_replica
        self.hvd = hvd
        self.size = k  # ranks in the group, the scheme's K
        self.index = rank % k  # this rank's place in its group: its shard of the FC layers
        self.replicas = size // k
        if self.replicas == 1:
            self.group, self.shard_peers = hvd.global_process_set, None
        else:
            # Every rank registers every set, in the same order (Horovod requires it).
            groups = [hvd.add_process_set(list(range(r * k, (r + 1) * k)))
                      for r in range(self.replicas)]  # fmt: skip
            peers = [hvd.add_process_set(list(range(j, size, k))) for j in range(k)]
            self.group, self.shard_peers = groups[rank // k], peers[self.index]
        self._held: set[int] = set()

    # -- which variables are this rank's shard --------------------------------------

    def hold(self, variables) -> None:
        """Records variables that live on one rank of each group (the FC shards)."""
        self._held |= {id(v) for v in variables}

    def holds(self, variable) -> bool:
        return id(variable) in self._held

    # -- the exchanges ------------------------------------------------------------------

    @staticmethod
    def _name(what: str) -> str:
        """A name for a collective that is the same on every rank of the group.

        Horovod matches a collective across ranks by name, which it otherwise takes from
        the tensor's name: here those differ between ranks (`fc6_0` on one, `fc6_1` on
        the other), and the ranks waited for each other for ever. Each exchange of a step
        has its own `what` ("features", "fc6", ...).
        """
        return f"owt_hybrid_{what}"

    def gather_rows(self, x: tf.Tensor, what: str) -> tf.Tensor:
        hvd, group, name = self.hvd, self.group, self._name(what)

        # Horovod's TensorFlow ops take no bfloat16: gather its bits as uint16 (exact, the
        # same bytes) and sum its gradients in float32.
        bf16 = x.dtype == tf.bfloat16

        @tf.custom_gradient
        def gather(x):
            def grad(dy):
                summed = hvd.reducescatter(
                    tf.cast(dy, tf.float32) if bf16 else dy, op=hvd.Sum, name=f"{name}_grad",
                    process_set=group,
                )  # fmt: skip
                return tf.cast(summed, dy.dtype)

            sent = tf.bitcast(x, tf.uint16) if bf16 else x
            y = hvd.allgather(sent, name=name, process_set=group)
            return (tf.bitcast(y, tf.bfloat16) if bf16 else y), grad

        return gather(x)

    def gather_columns(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """x: (rows, this rank's units) -> (rows, every rank's units, in rank order).

        Gathered as the transpose, since Horovod gathers along the first axis. Uneven
        units are split as `models.owt_shards.shard_sizes` splits them, the first ranks one
        more, which is also how Horovod's reduce-scatter splits them back.
        """
        return tf.transpose(self.gather_rows(tf.transpose(x), what))

    def gather_last_axis(self, value):
        """Every rank's pieces of a variable, concatenated along the last axis (units), on
        every rank; eagerly, for checkpoints."""
        x = tf.convert_to_tensor(value)
        name = self._name("checkpoint")
        if x.shape.rank == 1:
            return self.hvd.allgather(x, name=name, process_set=self.group).numpy()
        gathered = self.hvd.allgather(tf.transpose(x), name=name, process_set=self.group)
        return tf.transpose(gathered).numpy()

    def sum(self, x: tf.Tensor, what: str) -> tf.Tensor:
        """`x` summed over the ranks of the group."""
        return self.hvd.allreduce(x, op=self.hvd.Sum, process_set=self.group, name=self._name(what))

    def barrier(self) -> None:
        """Waits for every rank of every group. After a checkpoint's gathers, which run
        within each group, so that no group's ranks exit while another's still gather
        (Horovod shuts down on any rank's exit)."""
        self.hvd.allreduce(tf.zeros([]), op=self.hvd.Sum, name="owt_hybrid_barrier")

    def rows_home(self, x: tf.Tensor, own_rows: tf.Tensor) -> tf.Tensor:
        """x: (every rank's rows, this rank's columns) -> (its `own_rows` rows, all columns)."""
        hvd, group = self.hvd, self.group
        name = self._name("logits")
        with tf.device("/cpu:0"):  # split sizes stay on the host
            rows = hvd.allgather(tf.reshape(own_rows, [1]), name=f"{name}_rows", process_set=group)
        # Horovod sends along the first axis in pieces of whole rows: flatten each
        # rank's rows so that pieces of other column counts can be put side by side.
        pieces = tf.split(x, rows, num=self.size)
        flat = tf.concat([tf.reshape(p, [-1]) for p in pieces], axis=0)
        sent = rows * tf.shape(x)[1]

        @tf.custom_gradient
        def all_to_all(flat):
            received, splits = hvd.alltoall(flat, splits=sent, name=name, process_set=group)

            def grad(dy, _):  # the reverse exchange, under a name of its own (splits: none)
                back, _ = hvd.alltoall(dy, splits=splits, name=f"{name}_grad", process_set=group)
                return back

            return (received, splits), grad

        received, splits = all_to_all(flat)
        parts = tf.split(received, splits, num=self.size)
        return tf.concat([tf.reshape(p, [own_rows, -1]) for p in parts], axis=1)
