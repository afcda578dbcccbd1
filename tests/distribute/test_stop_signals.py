"""The stopping signals held away from every thread until the run can act on them."""

import signal
import threading

from alexnet_dist.distribute import stop_signals


def test_a_signal_held_stays_pending_until_released():
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    mask = stop_signals.hold()
    try:
        # To this thread: TensorFlow's threads, started before the hold, do not block it.
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert received == []  # blocked: pending, not lost
        assert signal.SIGUSR1 in signal.sigpending()
        stop_signals.release()
        assert received == [signal.SIGUSR1]  # delivered on release
    finally:
        stop_signals.restore(mask)
        signal.signal(signal.SIGUSR1, previous)
    assert set(stop_signals.STOPPING) == {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
