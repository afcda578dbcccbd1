"""The plan as a picture: predicted images/s against device count, one line per layout,
with the profile's measured points where it has them."""

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster's login node
import matplotlib.pyplot as plt  # noqa: E402

from alexnet_dist.planner.plan import Plan  # noqa: E402

# Keys of a profile's `measured` and the layout names they were measured with.
MEASURED_LAYOUTS = {"dp": "data parallel"}


def device_counts(per_node: int, largest: int = 1024) -> list[int]:
    """1, 2, 4, ... up to `largest`: within a node, then whole nodes."""
    counts, n = [], 1
    while n <= largest:
        if n <= per_node or n % per_node == 0:
            counts.append(n)
        n *= 2
    return counts


def plot(plans: list[Plan], path: str, title: str, measured: dict | None = None) -> None:
    """Writes a PNG of `plans` (one per device count) to `path`."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for p in plans:
        for x in p.predictions:
            lines.setdefault(x.layout.name, []).append((p.devices, x.images_per_s))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, points in lines.items():
        ax.plot(*zip(*points, strict=True), marker=".", label=f"{name} (predicted)")
    ideal = [(p.devices, p.devices * p.predictions[0].batch / p.predictions[0].compute)
             for p in plans]  # fmt: skip
    ax.plot(*zip(*ideal, strict=True), color="grey", linestyle=":", label="compute alone")
    for key, points in (measured or {}).items():
        if key == "source" or not points:
            continue
        xs, ys = zip(*sorted(points.items()), strict=True)
        ax.scatter(xs, ys, color="black", zorder=5, marker="o",
                   label=f"{MEASURED_LAYOUTS.get(key, key)} (measured)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("devices")
    ax.set_ylabel("images/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if measured and measured.get("source"):
        fig.text(0.01, 0.01, f"measured: {measured['source']}", fontsize=7, alpha=0.7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
