"""Compile files and import modules under another Python than the test suite's (run by that interpreter).

    python floorcheck.py ROOT --import PACKAGE_OR_MODULE ... --stand-in NAME ... --compile FILE ...

Every ``--compile`` file is compiled (syntax of that Python version). Every module of each ``--import`` name (a
package under ROOT with all its modules, or a single module ROOT/NAME.py) is imported with ROOT on ``sys.path``.
A ``--stand-in`` top-level package that this interpreter does not have (numpy, torch, qt, slicer...) is replaced
by a stand-in that accepts any attribute, call, subscript, operator or subclassing, so that each module's own
top-level code runs under this Python; a package the interpreter has is used for real, and any other missing
module is an error. ``__main__`` modules are compiled, not imported. Prints one JSON object:
``{"python": [3, 12], "compiled": N, "imported": [...], "stand_ins": [...], "errors": {name: message}}``.
Uses only the standard library (the interpreter has nothing else).
"""

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import traceback
import types
from pathlib import Path


class StandInType(type):
    """The type of every stand-in value: a class, so that modules can subclass it, decorate with it, subscript it,
    combine it with ``|`` and call it."""

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return stand_in(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], StandInType):
            return args[0]  # a decorator: keep the decorated function or class
        return stand_in(f"{cls.__qualname__}()")

    def __getitem__(cls, key):
        return cls

    def __iter__(cls):
        return iter(())

    def __len__(cls):
        return 0

    def __contains__(cls, item):
        return False

    def __enter__(cls):
        return cls

    def __exit__(cls, *exc):
        return False

    def __float__(cls):
        return 1.0

    def __int__(cls):
        return 1

    __index__ = __int__

    def _same(cls, *other):
        return cls

    __or__ = __ror__ = __and__ = __rand__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __pow__ = __rpow__ = __mod__ = __matmul__ = _same
    __neg__ = __pos__ = __abs__ = __invert__ = _same

    def _false(cls, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false


def stand_in(name: str):
    return StandInType(name.rsplit(".", 1)[-1], (), {"__qualname__": name, "__module__": "floorcheck.stand_in"})


class StandInModule(types.ModuleType):
    __version__ = "0.0"  # read at import by version checks

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = stand_in(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return StandInModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def module_names(root: Path, name: str) -> list:
    """``name`` and, for a package, every module under it (``__main__`` left out)."""
    if (root / f"{name}.py").is_file():
        return [name]
    folder = root / name
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--import", dest="imports", nargs="*", default=[])
    parser.add_argument("--stand-in", dest="stand_ins", nargs="*", default=[])
    parser.add_argument("--compile", dest="compile", nargs="*", default=[])
    args = parser.parse_args(argv)

    errors = {}
    for path in args.compile:
        try:
            compile(Path(path).read_text(encoding="utf-8"), path, "exec", dont_inherit=True)
        except SyntaxError as error:
            errors[path] = f"SyntaxError: {error}"
    stand_ins = sorted(n for n in set(args.stand_ins) if importlib.util.find_spec(n) is None)
    sys.meta_path.insert(0, StandInFinder(stand_ins))
    sys.path.insert(0, str(args.root.resolve()))
    sys.dont_write_bytecode = True
    imported = []
    for name in args.imports:
        for module in module_names(args.root, name):
            try:
                importlib.import_module(module)
                imported.append(module)
            except BaseException:  # noqa: BLE001 - every failure is reported, none stops the others
                errors[module] = traceback.format_exc(limit=-3)
    print(json.dumps({"python": list(sys.version_info[:2]), "compiled": len(args.compile), "imported": imported,
                      "stand_ins": stand_ins, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
