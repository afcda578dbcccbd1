"""What a worker says when a peer stops answering, and signals seen pending during start-up."""

import pytest

from alexnet_dist.distribute import peers

# As TensorFlow 2.21 and Horovod 0.28.1 word them (from tests/faults/test_hung_peer.py runs).
UNHEALTHY = (
    "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/"
    "replica:0/task:0/device:CPU:0}} Collective ops is aborted by: Error reported from "
    "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:1\nThe tasks have crashed. [Op:CollectiveReduceV2]"
)
LEADER_GONE = (
    "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/"
    "replica:0/task:1/device:CPU:0}} Collective ops is aborted by: Deadline Exceeded"
)
HOROVOD = "Horovod has been shut down. This was caused by an exception on one of the ranks"
# The all-reduce that was pending when Gloo gave up: Gloo's message, not Horovod's.
GLOO_TIMEOUT = (
    "[/tmp/horovod-0.28.1/third_party/compatible17_gloo/gloo/transport/tcp/unbound_buffer.cc:81]"
    " Timed out waiting 5000ms for recv operation to complete\n\t [[{{node HorovodGroupedAll"
    "reduce_add_0_gradients_fc8_BiasAddGrad_0}}]] [Op:__inference_train_step_3339]"
)


def test_the_worker_without_heartbeats_is_named():
    said = peers.lost_peer(RuntimeError(UNHEALTHY), 5, worker_index=0)
    assert said.startswith("worker 1 stopped answering: no heartbeat for ")
    assert "distribute.peer_timeout_s=5 seconds" in said


def test_a_silent_coordination_leader_is_named_by_the_others():
    said = peers.lost_peer(RuntimeError(LEADER_GONE), 60, worker_index=1)
    assert said.startswith("worker 0, which runs the coordination service, did not answer")


@pytest.mark.parametrize("message", [HOROVOD, GLOO_TIMEOUT])
def test_horovod_shutdown_says_what_it_cannot_tell(message):
    said = peers.lost_peer(RuntimeError(message), 60, worker_index=0)
    assert "another rank exited, or did not answer within distribute.peer_timeout_s=60" in said


def test_other_errors_are_not_taken_for_a_lost_peer():
    assert peers.lost_peer(ValueError("shapes do not match"), 60, worker_index=0) is None
