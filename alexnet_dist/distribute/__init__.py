"""Distribution backends behind one interface (`Runtime`), chosen by `distribute.backend`."""

from alexnet_dist.distribute import strategy
from alexnet_dist.distribute.runtime import Runtime

BACKENDS = {
    "single": strategy.single,
}


def create_runtime(backend: str) -> Runtime:
    """Builds the backend named by the `distribute.backend` config key."""
    if backend not in BACKENDS:
        raise ValueError(
            f"distribute.backend={backend!r} is unknown; choose one of {sorted(BACKENDS)}"
        )
    return BACKENDS[backend]()


__all__ = ["BACKENDS", "Runtime", "create_runtime"]
