"""The house rules of the package, read from its source: where each kind of code lives and
which way the imports run (README, "Layout")."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_dist")
TESTS = os.path.dirname(os.path.abspath(__file__))

# Each subpackage's floor: a module imports only from its own package and lower floors.
FLOORS = {
    "config": 0,
    "backend": 0,
    "models": 1,
    "data": 1,
    "distribute": 2,
    "training": 3,
    "planner": 3,
    "serving": 4,
    "doctor": 4,
    "cli": 5,
}


def _modules() -> dict[str, str]:
    """{"alexnet_dist.models.alexnet": path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            found[module.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _parse(path: str) -> ast.Module:
    with open(path) as f:
        return ast.parse(f.read())


def _imports(path: str) -> set[str]:
    """Every name imported anywhere in the file (at the top or inside functions)."""
    names = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _project_imports(module: str) -> set[str]:
    """The package's modules that `module` imports."""
    out = set()
    for name in _imports(MODULES[module]):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module and not module.startswith(name + "."):
            out.add(name)
    return out


GRAPH = {m: _project_imports(m) for m in MODULES}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or module in (f"alexnet_dist.{p}" for p in FLOORS) else None


def test_no_import_cycles():
    # Depth-first search for a back edge; every cycle would pass through one.
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_imports_run_down_the_floors():
    upward = []
    for module, targets in GRAPH.items():
        here = _package(module)
        for target in targets:
            there = _package(target)
            if here and there and here != there and FLOORS[there] > FLOORS[here]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward
    # The config imports nothing else of the project: a config error comes before all else.
    config = {t for m, ts in GRAPH.items() if _package(m) == "config" for t in ts}
    assert all(_package(t) == "config" for t in config), config


def test_the_top_of_the_package_holds_subpackages_only():
    loose = [n for n in os.listdir(PACKAGE) if n.endswith(".py") and n != "__init__.py"]
    assert not loose, loose
    assert set(FLOORS) | {"conf"} >= {
        n for n in os.listdir(PACKAGE) if os.path.isdir(os.path.join(PACKAGE, n))
    } - {"__pycache__"}


def test_models_are_plain_keras():
    for module, path in MODULES.items():
        if _package(module) == "models":
            framework = {n.split(".")[0] for n in _imports(path)} & {"tensorflow", "horovod"}
            assert not framework, (module, framework)


def test_every_module_with_behaviour_has_its_test_file():
    # tests/ mirrors the package: alexnet_dist/data/pipeline.py -> tests/data/test_pipeline.py.
    missing = []
    for module, path in MODULES.items():
        tree = _parse(path)
        behaviour = any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree))
        package, _, name = module.removeprefix("alexnet_dist.").rpartition(".")
        if not behaviour or not package:
            continue
        test = os.path.join(TESTS, package, f"test_{name}.py")
        if not os.path.exists(test):
            missing.append(os.path.relpath(test, os.path.dirname(TESTS)))
    assert not missing, missing
