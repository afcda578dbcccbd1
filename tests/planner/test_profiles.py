"""planner/profiles.py: built-in and user profiles, and what a bad one is told."""

import pytest

from alexnet_dist.planner import profiles


@pytest.mark.parametrize("name", profiles.names())
def test_every_built_in_profile_loads(name):
    p = profiles.load(name)
    assert p.name == name and p.devices_per_node >= 1 and p.rate > 0
    assert p.intra.bandwidth > 0 and p.inter.bandwidth > 0


def test_the_built_in_profiles():
    assert profiles.names() == ["a100-pcie-25gbe", "dgx-h100", "dgx1-p100", "gtx580-2012"]
    dgx1 = profiles.load("dgx1-p100")
    assert dgx1.intra.bandwidth == 20e9 and dgx1.inter.bandwidth == 100e9 / 8
    assert dgx1.measured["dp"] == {1: 2987, 2: 5658, 4: 10509, 8: 17822}


@pytest.mark.parametrize(
    "text, value",
    [("20GB/s", 20e9), ("400gbit", 50e9), ("100 Gbit/s", 12.5e9), ("6.5MB/s", 6.5e6),
     ("200mbit", 25e6)],
)  # fmt: skip
def test_bandwidths(text, value):
    assert profiles.bandwidth(text) == pytest.approx(value)


def test_durations():
    assert profiles.duration("5us") == pytest.approx(5e-6)
    assert profiles.duration("0.2ms") == pytest.approx(2e-4)
    with pytest.raises(profiles.ProfileError, match="intra.latency: '5 parsecs'"):
        profiles.duration("5 parsecs", "intra.latency")


def test_a_users_profile_from_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "devices_per_node: 4\nrate: 1500\n"
        "intra: {bandwidth: 25GB/s, latency: 10us}\ninter: {bandwidth: 100gbit, latency: 5us}\n"
    )
    p = profiles.load(str(path))
    assert p.name == "mine" and p.nics == 1 and p.algorithm == "ring" and p.overlap == "none"
    assert p.inter.bandwidth == 12.5e9


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a list\n", "a mapping of keys"),
        ("devices_per_node: 4\nintra: {bandwidth: 1GB/s, latency: 1us}\n", "missing key 'inter'"),
        ("devices_per_node: 0\nintra: {bandwidth: 1GB/s, latency: 1us}\n"
         "inter: {bandwidth: 1GB/s, latency: 1us}\n", "devices_per_node must be"),
        ("devices_per_node: 2\nintra: {bandwidth: fast, latency: 1us}\n"
         "inter: {bandwidth: 1GB/s, latency: 1us}\n", "intra.bandwidth: 'fast'"),
        ("devices_per_node: 2\nspeed: 3\nintra: {bandwidth: 1GB/s, latency: 1us}\n"
         "inter: {bandwidth: 1GB/s, latency: 1us}\n", "unknown key"),
        ("devices_per_node: 2\nalgorithm: tree\nintra: {bandwidth: 1GB/s, latency: 1us}\n"
         "inter: {bandwidth: 1GB/s, latency: 1us}\n", "algorithm must be"),
        ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_profile_is_refused_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(profiles.ProfileError, match=message) as e:
        profiles.load(str(path))
    assert str(path) in str(e.value)


def test_an_unknown_profile_names_the_built_in_ones():
    with pytest.raises(profiles.ProfileError, match="dgx1-p100"):
        profiles.load("cray-1")
