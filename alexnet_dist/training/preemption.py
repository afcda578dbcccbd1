"""Preemption: SIGTERM or SIGUSR1 asks the run to save a checkpoint and stop.

Clusters announce preemption and time limits with a signal (Slurm:
`--signal=USR1@120`, or SIGTERM on `scancel` and preemption). The handler only
raises a flag; the train step sums the flag over all workers, so every worker
stops after the same step and saves the same checkpoint. The process then exits
with EXIT_PREEMPTED, on which slurm/train.sbatch requeues the job, and the
requeued job resumes from that checkpoint.
"""

import signal

import tensorflow as tf

from alexnet_dist.distribute import stop_signals

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class PreemptionFlag:
    """Signal handlers from `install()` to the end of the `with` block; `flag` is read by the step.

    Install them after the distribution runtime is set up: MultiWorkerMirroredStrategy's
    coordination service registers a SIGTERM handler of its own, which must not
    replace ours (it left the workers waiting on each other).
    """

    def __init__(self):
        self._flag = None
        self._synced = False
        self._previous = {}
        self.signal = None

    @property
    def flag(self) -> tf.Variable:
        """1.0 once a signal arrived. Created on first use: MultiWorkerMirroredStrategy
        must be set up before TensorFlow creates anything."""
        if self._flag is None:
            # A plain host variable (outside any strategy scope), read by every replica.
            with tf.init_scope():
                self._flag = tf.Variable(
                    1.0 if self.signal else 0.0, trainable=False, name="preempt_requested"
                )
        return self._flag

    def _handle(self, signum, _frame):
        # No TensorFlow here: the handler may run in the middle of a TensorFlow call.
        self.signal = signal.Signals(signum).name

    def sync(self) -> None:
        """Copies a signal that arrived into `flag`; call it between steps."""
        if self.signal and self._flag is not None and not self._synced:
            self._flag.assign(1.0)
            self._synced = True

    def __enter__(self):
        return self

    def install(self) -> None:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
            # Restart interrupted system calls: TensorFlow's C++ runtime does not
            # expect EINTR from a signal that Python handles (it hung tf.data here).
            signal.siginterrupt(signum, False)
        # alexnet-train held them until now; one that came meanwhile is handled now.
        stop_signals.release()

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
