"""Checks on zip archives a user hands us (model files, scene bundles) before anything reads them.

Model files (``.skops``, PyTorch's ``.pt``) and scene bundles (``.mrb``) are zip archives. A
hostile one can be a zip bomb (a small file that unpacks to gigabytes or holds millions of
members) or name members ``../../somewhere`` or ``/etc/...`` so that unpacking writes outside
its folder. :func:`check_zip` refuses both from the archive's directory alone (nothing is
decompressed); :func:`safe_extract` unpacks only what passed, strictly inside the target folder.
Declared sizes can be trusted once checked: Python's ``zipfile`` never returns more bytes than a
member declares, and a member whose data disagrees fails its CRC.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

from .errors import InputError

MAX_TOTAL_BYTES = 2 * 1024 ** 3   # unpacked size of all members together
MAX_MEMBERS = 100_000
MAX_RATIO = 200                   # unpacked size / file size
RATIO_FLOOR = 64 * 1024 ** 2      # below this unpacked size no ratio can hurt (raw masks compress ~1000x)

_DRIVE = re.compile(r"^[A-Za-z]:")
_PICKLE_PROTOCOLS = range(2, 6)


def looks_like_pickle(path: str | os.PathLike) -> bool:
    """True when the file starts like a Python pickle (protocol 2 to 5)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS


def unsafe_member_name(name: str) -> bool:
    """True for member names that would land outside the folder they are unpacked into."""
    if not name or name.startswith(("/", "\\")) or _DRIVE.match(name) or "\x00" in name:
        return True
    return any(part == ".." for part in re.split(r"[/\\]", name))


def check_zip(path: str | os.PathLike, what: str, max_total: int | None = MAX_TOTAL_BYTES) -> list[zipfile.ZipInfo]:
    """The members of the zip archive at ``path``, or an :class:`InputError` naming it.

    ``what`` names the expected kind in messages ("a model file", "a scene bundle"). Refused: a
    file that is not a zip (a pickle gets its own message), more than :data:`MAX_MEMBERS`
    members, more than ``max_total`` bytes unpacked (``None``: no limit, for files stored
    uncompressed such as large network weights), an unpacked size more than :data:`MAX_RATIO`
    times the file's (above :data:`RATIO_FLOOR`), and member names that are absolute or contain
    ``..``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what.split(' ', 1)[-1]} not found", path=str(path))
    if looks_like_pickle(path):
        raise InputError(f"not {what}: it is a Python pickle, which this program never loads "
                         "(loading a pickle can run any code)", path=str(path))
    try:
        if not zipfile.is_zipfile(path):
            raise InputError(f"not {what} (not a zip archive)", path=str(path))
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged directory is a bad file for the user
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise InputError(f"not {what} (unreadable zip archive: {detail})", path=str(path)) from None
    if len(members) > MAX_MEMBERS:
        raise InputError(f"{what} with {len(members):,} members (more than {MAX_MEMBERS:,}) is refused "
                         "as a possible zip bomb", path=str(path))
    total = sum(member.file_size for member in members)
    if max_total is not None and total > max_total:
        raise InputError(f"{what} that unpacks to {total / 1024 ** 3:.1f} GiB (more than "
                         f"{max_total / 1024 ** 3:.0f} GiB) is refused as a possible zip bomb", path=str(path))
    ratio = total / max(path.stat().st_size, 1)
    if total > RATIO_FLOOR and ratio > MAX_RATIO:
        raise InputError(f"{what} compressed {ratio:.0f} times (more than {MAX_RATIO}) is refused as a "
                         "possible zip bomb", path=str(path))
    for member in members:
        if unsafe_member_name(member.filename):
            raise InputError(f"{what} with a member outside its folder ({member.filename[:120]!r}) is refused",
                             path=str(path))
    return members


def safe_extract(path: str | os.PathLike, folder: str | os.PathLike, what: str) -> list[Path]:
    """Unpack the archive at ``path`` into ``folder`` after :func:`check_zip`; the files written.

    Every target is checked to resolve inside ``folder``, so nothing is written elsewhere even
    if a name slips past the name check (symbolic links are never created: zipfile writes them
    as plain files).
    """
    path = Path(path)
    members = check_zip(path, what)
    root = Path(folder).resolve()
    written = []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in members:
                target = (root / member.filename).resolve()
                if target != root and root not in target.parents:
                    raise InputError(f"{what} with a member outside its folder ({member.filename[:120]!r}) "
                                     "is refused", path=str(path))
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as destination:
                    shutil.copyfileobj(source, destination)
                written.append(target)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - CRC errors, encrypted members, odd names: a bad file
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot unpack {what} ({detail})", path=str(path)) from None
    return written
