"""The package's floors: every import runs downhill, read from the code itself (module-level and
function-level imports alike), and the never-arrows the design names are stated on their own."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aaron_ros"

# Bottom to top: a module may import its own floor and the floors below it, never one above.
# A dotted floor (kernels.background) is a floor of its own inside its folder.
FLOORS = ("common", "models", "runtime", "kernels.background", "kernels", "contention", "coordinator",
          "bench", "ros", "cli")
# Arrows that must never exist whatever the order says, with the reason a failure prints.
NEVER = {
    ("coordinator", "bench"): "the coordinator is measured by the bench, it never reads it",
    ("runtime", "coordinator"): "lanes run what they are given; they do not know who decides",
    ("models", "kernels"): "a model is a stage graph; compiling it is the kernel builder's job",
    ("kernels.background", "kernels"): "background load sits under the builder that profiles with it",
}
# Outside imports only the ROS layer (and the command on top of it) may make.
ROS_ONLY = ("rclpy", "aaron_ros.msg", "aaron_ros.srv", "sensor_msgs", "diagnostic_msgs", "std_msgs",
            "builtin_interfaces")
ROS_FLOORS = ("ros", "cli")


@dataclass(frozen=True)
class Arrow:
    where: str  # file:line
    src: str  # floor of the importing module
    target: str  # the imported module, dotted


def floor_of(module: str) -> str | None:
    """'aaron_ros.kernels.background.levels' -> 'kernels.background'; None outside the floors."""
    parts = module.split(".")[1:]
    for n in (2, 1):
        name = ".".join(parts[:n])
        if len(parts) >= n and name in FLOORS:
            return name
    return None


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every module `path` imports, relative imports resolved, with its line."""
    mod = module_name(path, root)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from aaron_ros import x` names a module too.
            out += ([(node.lineno, f"{name}.{a.name}") for a in node.names] if name == "aaron_ros"
                    else [(node.lineno, name)])
    return out


def arrows(root: Path = PACKAGE) -> list[Arrow]:
    found = []
    for path in sorted(root.rglob("*.py")):
        src = floor_of(module_name(path, root))
        if src is None:
            continue
        for line, target in imports_of(path, root):
            found.append(Arrow(f"{path.relative_to(root.parent)}:{line}", src, target))
    return found


def violations(found: list[Arrow]) -> list[str]:
    """Every arrow that points up, or is a never-arrow, or reaches ROS from the core; and every
    circle between floors."""
    rank = {f: i for i, f in enumerate(FLOORS)}
    bad = []
    edges: dict[str, set[str]] = {}
    for a in found:
        if a.target.startswith(ROS_ONLY) and a.src not in ROS_FLOORS:
            bad.append(f"{a.where}: {a.src} imports {a.target}: only {' and '.join(ROS_FLOORS)} may use ROS")
            continue
        dst = floor_of(a.target) if a.target.startswith("aaron_ros.") else None
        if dst is None or dst == a.src:
            continue
        edges.setdefault(a.src, set()).add(dst)
        if (a.src, dst) in NEVER:
            bad.append(f"{a.where}: {a.src} imports {a.target}: never, {NEVER[a.src, dst]}")
        elif rank[dst] > rank[a.src]:
            bad.append(f"{a.where}: {a.src} imports {a.target}: {dst} is above {a.src} "
                       f"(floors, bottom up: {', '.join(FLOORS)})")
    bad += [f"circle between floors: {' -> '.join(c)}" for c in circles(edges)]
    return bad


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each floor that lies on one (depth-first search, each circle once)."""
    found, seen = [], set()
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append([*path, start])
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_every_import_runs_downhill():
    found = arrows()
    bad = violations(found)  # first: a move reverted shows its arrows, not only an emptied floor
    assert not bad, "imports against the floors:\n" + "\n".join(bad)
    quiet = [f for f in FLOORS if f not in {a.src for a in found}]
    assert not quiet, f"floors with no module that imports anything (moved away?): {quiet}"


def test_every_module_is_on_a_floor():
    lost = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
            if p.name != "__init__.py" or p.parent != PACKAGE
            if floor_of(module_name(p)) is None]
    assert not lost, f"modules outside every floor: {lost}"


def test_the_checker_catches_each_kind_of_violation():
    """Each arrow the layout once had (or the design forbids) is reported, with its reason."""
    def one(src: str, target: str) -> list[str]:
        return violations([Arrow("x.py:1", src, target)])

    assert "never, the coordinator is measured by the bench" in one("coordinator", "aaron_ros.bench.workload")[0]
    assert "never, lanes run" in one("runtime", "aaron_ros.coordinator.types")[0]
    assert "never, a model is a stage graph" in one("models", "aaron_ros.kernels.bag")[0]
    assert "never, background load" in one("kernels.background", "aaron_ros.kernels.profile")[0]
    assert "bench is above common" in one("common", "aaron_ros.bench.zoo")[0]
    assert "contention is above kernels" in one("kernels", "aaron_ros.contention.predictor")[0]
    assert "only ros and cli may use ROS" in one("coordinator", "rclpy.node")[0]
    assert "only ros and cli may use ROS" in one("bench", "aaron_ros.msg")[0]
    assert one("ros", "rclpy.node") == [] and one("coordinator", "aaron_ros.kernels.bag") == []
    # Two floors importing each other: the upward arrow and the circle are both named.
    both = violations([Arrow("a.py:1", "coordinator", "aaron_ros.bench.metrics"),
                       Arrow("b.py:2", "bench", "aaron_ros.coordinator.types")])
    assert any(v.startswith("circle between floors: bench -> coordinator -> bench") for v in both), both


def test_floor_of_resolves_subfolders_and_relative_imports(tmp_path):
    assert floor_of("aaron_ros.kernels.background.levels") == "kernels.background"
    assert floor_of("aaron_ros.kernels.bag") == "kernels"
    assert floor_of("aaron_ros.cli") == "cli"
    assert floor_of("aaron_ros.msg") is None
    rel = [t for _, t in imports_of(PACKAGE / "kernels" / "background" / "generators.py")]
    assert "aaron_ros.kernels.background.levels" in rel
