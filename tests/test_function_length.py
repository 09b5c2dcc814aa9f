"""No function in the package is longer than 120 lines (a long function is a sequence of steps waiting for names).

``python tests/test_function_length.py`` lists every function over the limit, longest first.
"""
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gan_probe"
LIMIT = 120


def long_functions(limit: int = LIMIT) -> list[tuple[int, str]]:
    """``(lines, "path:line name")`` of every function or method of the package over ``limit`` lines
    (decorators and docstring included), longest first."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - first + 1
                if lines > limit:
                    found.append((lines, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def test_no_function_is_longer_than_the_limit():
    assert long_functions() == []


if __name__ == "__main__":
    for lines, where in long_functions(int(sys.argv[1]) if len(sys.argv) > 1 else LIMIT):
        print(f"{lines:5d}  {where}")
