"""The Slicer module files' size and what they repeat: a table of every module file and module-library file
(lines, functions, the longest function) and every function body that two module files share.

    python bench/module_sizes.py

A function body is compared after parsing (names of the function and its docstring left out), so a copy with other
formatting or comments is still found; bodies of fewer than MIN_STATEMENTS statements (a getter, a one-line
delegation) are not counted. Testing/test_module_sizes.py asserts the budget and that no body is shared.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RadiotherapyResponse"
LIB_DIR = MODULE_DIR / "RadiotherapyResponseLib"
MIN_STATEMENTS = 4


def functions(source: str):
    """(qualified name, first line, statement count, body fingerprint) of every function in ``source``."""
    tree = ast.parse(source)
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                         ast.Constant):
                    body = body[1:]  # the docstring is not the behaviour
                statements = sum(isinstance(n, ast.stmt) for b in body for n in ast.walk(b))
                dump = "\n".join(ast.dump(b, annotate_fields=False) for b in body)
                found.append((f"{prefix}{child.name}", child.lineno, statements,
                              hashlib.sha256(dump.encode()).hexdigest()))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def report(files, root: Path = REPO):
    """[(file relative to ``root``, lines, functions, longest function and its statements)] and the shared bodies
    [(fingerprint, [(file name, function, line)])] among ``files``."""
    rows, bodies = [], {}
    for path in files:
        source = path.read_text(encoding="utf-8")
        found = functions(source)
        longest = max(found, key=lambda f: f[2], default=("-", 0, 0, ""))
        rows.append((path.relative_to(root).as_posix(), len(source.splitlines()), len(found),
                     f"{longest[0]} ({longest[2]})"))
        for name, line, statements, fingerprint in found:
            if statements >= MIN_STATEMENTS:
                bodies.setdefault(fingerprint, []).append((path.name, name, line))
    shared = [(fingerprint, places) for fingerprint, places in bodies.items()
              if len({file for file, _, _ in places}) > 1]
    return rows, shared


def module_files():
    return sorted(MODULE_DIR.glob("*.py"))


def library_files():
    return sorted(LIB_DIR.glob("*.py"))


def main() -> int:
    rows, shared = report(module_files() + library_files())
    width = max(len(row[0]) for row in rows)
    print(f"{'file':<{width}}  {'lines':>5}  {'functions':>9}  longest function (statements)")
    for file, lines, count, longest in rows:
        print(f"{file:<{width}}  {lines:>5}  {count:>9}  {longest}")
    _, moduleShared = report(module_files())
    print(f"\nfunction bodies of {MIN_STATEMENTS}+ statements shared by two files: {len(shared)} "
          f"(between module files: {len(moduleShared)})")
    for _, places in shared:
        print("  " + " = ".join(f"{file}:{line} {name}" for file, name, line in places))
    return 0


if __name__ == "__main__":
    sys.exit(main())
