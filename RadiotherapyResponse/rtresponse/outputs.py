"""Where a command writes: checked before any computing, written as one set, never over an input.

A command's outputs are a file (``--out F.csv`` and the sidecars written beside it, such as
``F.zscore.csv``) or a folder (``--out DIR``). :func:`staged` checks them first (not one of the
inputs, not a folder where a file is meant or the reverse, writable, and an existing results
folder only with ``overwrite``), lets the command write into a staging folder beside the final
place, and moves the whole set into place only when the command succeeded: a failed or
interrupted run leaves nothing new, and a re-run replaces the earlier set instead of mixing with it.

Every output says how it was made (:mod:`rtresponse.provenance`): a file gets ``F.json`` beside it (and
so does each file written with it, ``F.zscore.csv.json``), a folder ``provenance.json``. A results folder also carries ``.rtresponse-run.json`` (command, version, time): ``overwrite``
replaces only such a folder, or an empty one, so a mistyped ``--out ~`` never wipes a home folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from .errors import InputError

RUN_MARKER = ".rtresponse-run.json"
FILE, FOLDER = "file", "folder"
STAGING = "-staging-"  # a staging folder is .<final name>-staging-<random>, beside the final place


def final_place(path: str | os.PathLike) -> Path:
    """The final place of a folder output's staging path (what a command got as ``--out`` while it runs under
    :func:`staged`), for what must outlive an interrupted run (``evaluate``'s progress); ``path`` itself when it is
    not a staging path."""
    path = Path(path)
    name = path.name
    if name.startswith(".") and STAGING in name:
        return path.with_name(name[1:].rsplit(STAGING, 1)[0])
    return path


@dataclass(frozen=True)
class Output:
    """One output of a command: the argument that names it, ``file`` or ``folder``, and what a re-run keeps.

    ``keep``: names of files an earlier run left in the folder that the new run may reuse
    (caches keyed by their inputs), copied into the staging folder before the command runs.
    """

    option: str
    kind: str = FILE
    keep: tuple[str, ...] = ()


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    try:
        _real(path).relative_to(_real(folder))
        return True
    except ValueError:
        return False


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def check(path: Path, output: Output, inputs: Iterable[Path], overwrite: bool) -> None:
    """Raise InputError if ``path`` cannot take ``output`` (see the module's docstring)."""
    flag = _flag(output.option)
    inputs = [Path(p) for p in inputs]
    for source in inputs:
        if source.exists() and path.exists() and os.path.samefile(source, path) or _real(source) == _real(path):
            raise InputError(f"{flag} names an input of this command; choose another output", path=str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag}: {parent} is a file, not a folder", path=str(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: no permission to write in {parent}", path=str(path))
    if output.kind == FILE:
        if path.is_dir():
            raise InputError(f"{flag} is a folder; give a file name", path=str(path))
        if path.exists() and not path.is_file():
            raise InputError(f"{flag} exists and is not a regular file", path=str(path))
        return
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} is a file; give a folder", path=str(path))
    held = {item.name for item in path.iterdir()} - {RUN_MARKER} if path.is_dir() else set()
    if not held or held <= set(output.keep):  # empty, or only caches this command reuses
        return
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: no permission to write in the folder", path=str(path))
    if not overwrite:
        raise InputError(f"{flag} already holds files; choose a new folder, or pass --overwrite to replace "
                         "the earlier results", path=str(path))
    if not (path / RUN_MARKER).is_file():
        raise InputError(f"{flag} holds files rtresponse did not write; --overwrite replaces only a results "
                         "folder of rtresponse (choose a new or empty folder)", path=str(path))
    held = [source for source in inputs if _inside(source, path)]
    if held:
        raise InputError(f"{flag} holds an input of this command ({held[0]}); --overwrite would delete it",
                         path=str(path))


class _Staging:
    """The staging place of one output and how to move it into place."""

    def __init__(self, final: Path, output: Output):
        self.final, self.output = final, output
        parent = final.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING}", dir=parent))
        self.path = self.folder if output.kind == FOLDER else self.folder / final.name
        if output.kind == FOLDER and final.is_dir():
            for name in output.keep:
                if (final / name).is_file():
                    shutil.copy2(final / name, self.folder / name)

    def commit(self, record: Mapping, described: Mapping) -> list[Path]:
        """Move the output into place with its provenance; returns the final paths of the files written."""
        from . import provenance

        if self.output.kind == FILE:
            if self.path.exists():  # each file of the set (F.csv, F.zscore.csv, ...) gets its own F.json
                written = sorted(p.name for p in self.folder.iterdir())
                for name in written:
                    if not (name.endswith(provenance.SIDECAR_SUFFIX) and name[:-len(provenance.SIDECAR_SUFFIX)]
                            in written):
                        provenance.write(provenance.sidecar(self.folder / name),
                                         {**described, "file": name, "files": written})
            moved = []
            for item in sorted(self.folder.iterdir()):  # the file, its sidecars and its provenance
                os.replace(item, self.final.parent / item.name)
                moved.append(self.final.parent / item.name)
            shutil.rmtree(self.folder, ignore_errors=True)
            return moved
        written = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
        provenance.write(self.folder / provenance.FOLDER_RECORD, {**described, "files": written})
        (self.folder / RUN_MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.chmod(self.folder, 0o777 & ~_umask())  # mkdtemp makes 0700
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}-replaced-{os.getpid()}")
            os.replace(self.final, old)
            os.replace(self.folder, self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.folder, self.final)
        return [self.final / name for name in [*written, provenance.FOLDER_RECORD]]

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged(paths: Mapping[str, Path], outputs: Sequence[Output], inputs: Iterable[Path], overwrite: bool,
           command: Sequence[str] = (), describe: Callable[[], Mapping] | None = None,
           written: list | None = None) -> Iterator[dict[str, Path]]:
    """Check every output, then yield {option: staging path} for the command to write to.

    On success each output is moved into place (folders with their run record), each with its
    provenance: ``describe()`` (called after the command ran) as a file's sidecar ``F.json`` or a
    folder's ``provenance.json``. On an error or an interruption the staging places are removed
    and nothing new is left. ``written`` (a list) receives the final paths of every file written.
    """
    from . import provenance

    from . import __version__

    inputs = list(inputs)
    chosen = [(output, Path(paths[output.option])) for output in outputs if paths.get(output.option) is not None]
    finals = [final for _, final in chosen]
    for output, final in chosen:
        check(final, output, inputs + [f for f in finals if f is not final], overwrite)
    stages: list[_Staging] = []
    try:
        for output, final in chosen:
            stages.append(_Staging(final, output))
        yield {stage.output.option: stage.path for stage in stages}
        record = {"command": ["rtresponse", *command], "rtresponse": __version__,
                  "python": sys.version.split()[0], "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        described = describe() if describe is not None else provenance.record(["rtresponse", *command])
        for stage in stages:
            moved = stage.commit(record, described)
            if written is not None:
                written.extend(moved)
    finally:
        for stage in stages:
            stage.discard()


def writes(parser, *outputs: Output) -> None:
    """Declare what an argparse command writes, so ``rtresponse.cli.main`` checks and stages it."""
    parser.set_defaults(outputs=outputs)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier run in the output folder (default: refuse)")


def path_arguments(values: Mapping[str, object], skip: Iterable[str] = ()) -> list[Path]:
    """Every path among a command's parsed arguments (lists of paths included), except ``skip``."""
    skip = set(skip)
    found = []
    for name, value in values.items():
        if name in skip:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Path):
                found.append(item)
    return found
