"""No two modules of the package import each other, directly or through others (imports inside functions count:
they still tie the two modules together). ``python tests/test_import_cycles.py`` prints every cycle."""
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gan_probe"
# cycles in packages being regrouped (none now): a pair listed here is tolerated until it is gone
IN_PROGRESS: set = set()


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (a package's ``__init__`` is not counted as imported by its own
    modules, nor they by it: that is how a package exposes its parts)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target in modules and target != name and not (name.startswith(target + ".")
                                                                  or target.startswith(name + ".")):
                    graph[name].add(target)
    return graph


def cycles(ignore: set = frozenset()) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), sorted; imports between a pair of modules in
    ``ignore`` are left out."""
    graph = {a: {b for b in targets if frozenset({a, b}) not in ignore} for a, targets in import_graph().items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles():
    assert cycles(ignore=IN_PROGRESS) == []


def test_the_data_readers_and_the_downloads_do_not_import_each_other():
    graph = import_graph()
    assert "gan_probe.data.download" in graph["gan_probe.data.cifar10"]
    assert "gan_probe.data.cifar10" not in graph["gan_probe.data.download"]


if __name__ == "__main__":
    for group in cycles():
        print(" <-> ".join(group))
