"""Module files stay thin and do not repeat each other (issue 16): each module file within its line budget, and no
function body of several statements shared by two module files (bench/module_sizes.py prints the whole table)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _load_bench(name: str):
    """A bench script as a module, without putting bench/ on sys.path (bench/distributed.py would shadow Dask's
    `distributed` package for every later test)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


module_sizes = _load_bench("module_sizes")

MODULE_LINE_BUDGET = 400  # lines of a module file, its self-test included


@pytest.mark.parametrize("path", module_sizes.module_files(), ids=lambda p: p.name)
def test_each_module_file_is_within_its_budget(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MODULE_LINE_BUDGET, f"{path.name} has {lines} lines (budget {MODULE_LINE_BUDGET})"


def test_no_function_body_is_shared_by_two_module_files():
    _, shared = module_sizes.report(module_sizes.module_files())
    assert not shared, "\n".join(" = ".join(f"{file}:{line} {name}" for file, name, line in places)
                                 for _, places in shared)


def test_the_checker_finds_a_copied_body_whatever_its_names_and_docstring(tmp_path):
    body = "    total = 0\n    for x in values:\n        total += x\n    if total > 3:\n        return total\n    return 0\n"
    (tmp_path / "A.py").write_text(f'def a(values):\n    """Sum."""\n{body}', encoding="utf-8")
    (tmp_path / "B.py").write_text(f"class W:\n    def b(self, values):\n{body.replace('    ', '        ')}",
                                   encoding="utf-8")
    (tmp_path / "C.py").write_text("def c(values):\n    return 1\n", encoding="utf-8")
    rows, shared = module_sizes.report(sorted(tmp_path.glob("*.py")), root=tmp_path)
    assert [row[:3] for row in rows] == [("A.py", 8, 1), ("B.py", 8, 1), ("C.py", 2, 1)]
    [(_, places)] = shared
    assert {(file, name) for file, name, _ in places} == {("A.py", "a"), ("B.py", "W.b")}

