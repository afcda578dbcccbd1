"""Cluster profiles: a machine's devices, links and one device's measured rate, as YAML.

The built-in ones live in planner/profiles/ with their sources in comments
(docs/planner.md lists them); a user's own is a YAML file of the same keys:

    name: my-cluster
    devices_per_node: 4
    nics: 1                                   # per node
    rate: 1500                                # one device's images/s at rate_workload
    rate_workload: {variant: owt, batch: 256, precision: mixed_bfloat16, image_size: 224}
    intra: {bandwidth: 25GB/s, latency: 10us} # per device, each way
    inter: {bandwidth: 100gbit, latency: 5us} # per NIC, each way
    algorithm: ring                           # or hierarchical
    overlap: none                             # or backward
    measured: {source: ..., dp: {1: 1500, 2: 2900}}   # optional: plotted next to the plan

Bandwidths take tc's units (bit, kbit, mbit, gbit per second) or bytes (B/s, KB/s,
MB/s, GB/s); latencies s, ms, us or ns. Files are read with yaml.safe_load: data only.
"""

import dataclasses
import os
import re

import yaml

from alexnet_dist.planner.step_time import ALGORITHMS, OVERLAPS, Link

BUILT_IN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
KEYS = {"name", "description", "devices_per_node", "nics", "rate", "rate_workload", "intra",
        "inter", "algorithm", "overlap", "measured"}  # fmt: skip
WORKLOAD_KEYS = {"variant", "batch", "precision", "image_size"}

_BITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
_BYTES = {"b/s": 1, "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9, "tb/s": 1e12}
_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    description: str
    devices_per_node: int
    nics: int
    rate: float | None
    rate_workload: dict
    intra: Link
    inter: Link
    algorithm: str
    overlap: str
    measured: dict  # {"source": ..., "dp": {devices: images/s}, ...}


def bandwidth(text, where: str = "bandwidth") -> float:
    """Bytes per second of "20GB/s", "400gbit", "100 Gbit/s"."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z/]+)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if unit.removesuffix("/s") in _BITS:
        return float(m.group(1)) * _BITS[unit.removesuffix("/s")] / 8
    if unit in _BYTES:
        return float(m.group(1)) * _BYTES[unit]
    raise ProfileError(f"{where}: {text!r} is not a bandwidth (e.g. 25GB/s, 400gbit)")


def duration(text, where: str = "latency") -> float:
    """Seconds of "5us", "0.2ms", "1s"."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(s|ms|us|ns)\s*", str(text))
    if not m:
        raise ProfileError(f"{where}: {text!r} is not a duration (e.g. 5us, 0.2ms)")
    return float(m.group(1)) * _SECONDS[m.group(2)]


def names() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(BUILT_IN) if f.endswith(".yaml"))


def load(name_or_path: str) -> Profile:
    """A built-in profile by name, or a YAML file by path."""
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(BUILT_IN, f"{name_or_path}.yaml")
        if not os.path.exists(path):
            raise ProfileError(
                f"no profile {name_or_path!r}: not a file, and not one of {', '.join(names())}"
            )
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML ({e})") from None
    return parse(raw, path)


def parse(raw, path: str = "<profile>") -> Profile:
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a mapping of keys, got {type(raw).__name__}")
    unknown = set(raw) - KEYS
    if unknown:
        raise ProfileError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    for key in ("devices_per_node", "intra", "inter"):
        if key not in raw:
            raise ProfileError(f"{path}: missing key {key!r}")

    def positive_int(key, default=None):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProfileError(f"{path}: {key} must be a whole number >= 1, got {value!r}")
        return value

    def link(key):
        spec = raw[key]
        if not isinstance(spec, dict) or set(spec) != {"bandwidth", "latency"}:
            raise ProfileError(f"{path}: {key} must be {{bandwidth: ..., latency: ...}}")
        return Link(bandwidth(spec["bandwidth"], f"{path}: {key}.bandwidth"),
                    duration(spec["latency"], f"{path}: {key}.latency"))  # fmt: skip

    rate = raw.get("rate")
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        raise ProfileError(f"{path}: rate must be images/s > 0, got {rate!r}")
    workload = raw.get("rate_workload") or {}
    if not isinstance(workload, dict) or set(workload) - WORKLOAD_KEYS:
        raise ProfileError(f"{path}: rate_workload takes {sorted(WORKLOAD_KEYS)}")
    algorithm, overlap = raw.get("algorithm", "ring"), raw.get("overlap", "none")
    if algorithm not in ALGORITHMS:
        raise ProfileError(f"{path}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if overlap not in OVERLAPS:
        raise ProfileError(f"{path}: overlap must be one of {OVERLAPS}, got {overlap!r}")
    measured = raw.get("measured") or {}
    if not isinstance(measured, dict):
        raise ProfileError(f"{path}: measured must be a mapping")
    for layout, points in measured.items():
        if layout == "source":
            continue
        if not isinstance(points, dict) or not all(
            isinstance(n, int) and isinstance(v, int | float) for n, v in points.items()
        ):
            raise ProfileError(f"{path}: measured.{layout} must map device counts to images/s")
    return Profile(
        name=str(raw.get("name") or os.path.basename(path).removesuffix(".yaml")),
        description=str(raw.get("description", "")),
        devices_per_node=positive_int("devices_per_node"),
        nics=positive_int("nics", 1),
        rate=float(rate) if rate is not None else None,
        rate_workload=dict(workload),
        intra=link("intra"),
        inter=link("inter"),
        algorithm=algorithm,
        overlap=overlap,
        measured=measured,
    )
