"""tools/netlab.sh and tools/netlab.py: emulated nodes on rate-limited links, and the
project's launch paths across them.

Needs root (network namespaces, veth pairs, tc), as CI has. The labs here have names
and subnets of their own, so a developer's lab (the default "lab") is left alone.
"""

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import REPO, TINY_RUN, claim_for_this_worker, compose_cfg
from tools import netlab

pytestmark = [
    pytest.mark.netlab,
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.xdist_group("netlab"),  # the labs' names and subnets: one worker at a time
]

SCRIPT = os.path.join(REPO, "tools", "netlab.sh")


def _netlab(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=120)


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def _leftovers(name: str) -> list[str]:
    """What a lab named `name` left on this machine."""
    left = [n for n in _namespaces() if n.startswith(f"netlab-{name}-")]
    left += [n for n in _links() if n.startswith(f"nl-{name}-") or n == f"nlb-{name}"]
    return left + ([f"/tmp/netlab-{name}"] if os.path.exists(f"/tmp/netlab-{name}") else [])


@pytest.fixture(scope="module")
def lab():
    """Two nodes at 1 Gbit/s, taken down after the module's tests, however they end."""
    if os.geteuid() != 0:
        pytest.fail("tools/netlab.sh needs root (network namespaces, veth pairs and tc)")
    claim_for_this_worker("netlab")
    _netlab("down", "--name", "ci")  # what an interrupted session left
    made = netlab.Lab.up(2, "1gbit", "ci", "--subnet", "10.93.0")
    try:
        yield made
    finally:
        made.down()
        assert not _leftovers("ci")


def test_up_makes_the_nodes_and_down_removes_everything():
    name = "ciup"
    _netlab("down", "--name", name)
    up = _netlab("up", "3", "--rate", "200mbit", "--name", name, "--subnet", "10.94.0")
    try:
        assert up.returncode == 0, up.stderr
        state = f"/tmp/netlab-{name}"
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700  # private
        assert {f"netlab-{name}-{i}" for i in range(3)} <= _namespaces()
        for i in range(3):
            addr = _netlab("addr", str(i), "--name", name).stdout.strip()
            assert addr == f"10.94.0.{i + 1}"
            shown = _netlab("exec", str(i), "--name", name, "--", "ip", "-o", "addr", "show")
            assert f"inet {addr}/24" in shown.stdout, shown
            # Both directions of the node's link are limited to the rate.
            for out in (
                _netlab("exec", str(i), "--name", name, "--", "tc", "qdisc", "show", "dev", "eth0"),
                subprocess.run(["tc", "qdisc", "show", "dev", f"nl-{name}-{i}"],
                               capture_output=True, text=True),
            ):  # fmt: skip
                assert "tbf" in out.stdout and "rate 200Mbit" in out.stdout, out.stdout
        status = _netlab("status", "--name", name).stdout
        assert "3 nodes, links of 200mbit" in status and "10.94.0.3" in status

        # A second `up` of the same lab is refused and changes nothing.
        again = _netlab("up", "2", "--name", name, "--subnet", "10.94.0")
        assert again.returncode != 0 and state in again.stderr, again
        assert {f"netlab-{name}-{i}" for i in range(3)} <= _namespaces()

        # A process left running on a node does not keep the node alive.
        sleeper = subprocess.Popen(["bash", SCRIPT, "exec", "1", "--name", name, "--",
                                    "sleep", "600"])  # fmt: skip
        time.sleep(0.5)
    finally:
        down = _netlab("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert sleeper.wait(20) != 0  # stopped by down
    assert not _leftovers(name)


def test_a_failed_up_removes_what_it_made():
    name = "cifail"
    _netlab("down", "--name", name)
    # The link's shaping fails after the bridge, the first namespace and its veth exist.
    failed = _netlab("up", "2", "--latency", "soon", "--name", name, "--subnet", "10.95.0")
    assert failed.returncode != 0
    assert "up failed; removing what it made" in failed.stderr, failed.stderr
    assert not _leftovers(name)
    assert _netlab("up", "1", "--rate", "fast", "--name", name).returncode == 2  # named
    assert "--rate must be a number" in _netlab("up", "1", "--rate", "fast").stderr
    assert not _leftovers(name)


def test_a_delay_is_netems_or_a_clear_error():
    name = "cidelay"
    _netlab("down", "--name", name)
    up = _netlab("up", "1", "--delay", "1ms", "--name", name, "--subnet", "10.96.0")
    try:
        if up.returncode == 0:  # a kernel with sch_netem: the delay, then the rate
            out = _netlab("exec", "0", "--name", name, "--", "tc", "qdisc", "show", "dev", "eth0")
            assert "netem" in out.stdout and "delay 1ms" in out.stdout and "tbf" in out.stdout
        else:  # this project's CI kernel has none
            assert "--delay needs tc netem" in up.stderr, up.stderr
    finally:
        _netlab("down", "--name", name)
    assert not _leftovers(name)


@pytest.mark.parametrize("rate, bits", [("200mbit", 200e6), ("1gbit", 1e9)])
def test_the_rate_it_sets_is_the_rate_measured_through_it(lab, rate, bits):
    lab = lab.set_rate(rate)
    assert lab.rate_bits == bits
    measured = netlab.measure_rate(lab, 0, 1, seconds=1.5)
    assert abs(measured - bits) / bits < 0.10, f"{rate}: {measured / 1e6:.1f} Mbit/s"
    lab.set_rate("1gbit")


def _gradient_bytes(*overrides) -> int:
    from alexnet_dist.distribute.placement import build_model

    model = build_model(compose_cfg([*TINY_RUN, *overrides]).model, num_classes=3)
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables) * 4


# Steps long enough to measure a step's traffic between the chief's step lines.
STEPS = ["trainer.max_steps=8", "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=100"]


def test_horovod_ranks_on_two_nodes_sum_gradients_over_the_links(lab, tmp_path):
    code, log = netlab.horovod(lab, str(tmp_path / "run"), [*TINY_RUN, *STEPS], timeout=240,
                               echo=False)  # fmt: skip
    assert code == 0, "".join(log.lines[-40:])
    assert (tmp_path / "run" / "checkpoints" / "ckpt-8.index").exists()
    # A ring all-reduce over 2 ranks: each sends what it contributes, the whole gradient.
    _, sent = log.per_step(first=3)
    gradient = _gradient_bytes()
    for node, got in enumerate(sent):
        # Above: TCP/IP headers, and Horovod's coordination (a small message every cycle).
        assert gradient <= got < 1.1 * gradient, f"node {node}: {got:.0f} B/step, {gradient} B"


def test_the_2014_hybrid_over_ranks_on_two_nodes_moves_what_its_traffic_says(lab, tmp_path):
    from alexnet_dist.models.traffic import hybrid_traffic

    hybrid = ["model=owt", "distribute.owt_hybrid=true", "distribute.ranks_per_replica=2"]
    code, log = netlab.horovod(lab, str(tmp_path / "run"), [*TINY_RUN, *hybrid, *STEPS],
                               timeout=240, echo=False)  # fmt: skip
    assert code == 0, "".join(log.lines[-40:])
    assert any("one weird trick on 2 devices" in line for line in log.lines)

    from alexnet_dist.distribute.placement import build_model

    network = build_model(compose_cfg([*TINY_RUN, "model=owt"]).model, num_classes=3)
    traffic = hybrid_traffic(network, devices=2)
    per_device = 16 // 2  # debug=tiny: 16 images per step, 8 on each rank
    expected = traffic.exchanged_bytes_per_image * per_device + traffic.ring_bytes_per_device(
        traffic.allreduced_bytes
    )
    # What the run times at start is what it sums: the conv layers' gradients (the shards
    # belong to one rank each).
    summed = f"gradient all-reduce over 2 replicas: {traffic.allreduced_bytes / 1e6:.1f} MB"
    assert any(summed in line for line in log.lines), summed
    _, sent = log.per_step(first=3)
    for node, got in enumerate(sent):
        # The messages are small here (tens of KB): Horovod's coordination, a few hundred
        # bytes every millisecond of the step, weighs more than in the data-parallel case.
        assert expected <= got < 1.15 * expected, f"node {node}: {got:.0f} B/step, {expected}"


def test_multiworker_workers_on_two_nodes_sum_gradients_over_the_links(lab, tmp_path):
    code, log = netlab.multiworker(lab, str(tmp_path / "run"), [*TINY_RUN, *STEPS], timeout=240,
                                   echo=False)  # fmt: skip
    assert code == 0, "".join(log.lines[-40:])
    assert (tmp_path / "run" / "checkpoints" / "ckpt-8.index").exists()
    _, sent = log.per_step(first=3)
    gradient = _gradient_bytes()
    for node, got in enumerate(sent):
        assert gradient <= got < 1.1 * gradient, f"node {node}: {got:.0f} B/step, {gradient} B"


def test_a_trainer_reads_its_batches_from_a_data_service_on_another_node(lab, tmp_path):
    service = [sys.executable, "-m", "alexnet_dist.cli.data_service"]
    dispatcher = subprocess.Popen([*lab.prefix(1), *service, "dispatcher", "--port", "5050"])
    address = f"{lab.nodes[1].address}:5050"
    worker = subprocess.Popen([*lab.prefix(1), *service, "worker", "--dispatcher", address,
                               "--host", lab.nodes[1].address])  # fmt: skip
    try:
        before = lab.link_bytes()[1][0]
        run = subprocess.run(
            [*lab.prefix(0), sys.executable, "-m", "alexnet_dist.cli.train", *TINY_RUN,
             "trainer.max_steps=3", f"data.service=grpc://{address}",
             f"hydra.run.dir={tmp_path / 'run'}"],
            capture_output=True, text=True, timeout=240, cwd=REPO,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        # The service's node sent the trainer its training images: float32, compressed by
        # the service (snappy), but no fewer bytes than their pixels at one byte each.
        pixels = 3 * 16 * 67 * 67 * 3
        assert lab.link_bytes()[1][0] - before > pixels
    finally:
        for p in (worker, dispatcher):
            p.kill()
            p.wait()
