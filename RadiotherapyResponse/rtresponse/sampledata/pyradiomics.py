"""PyRadiomics' five real regression cases (brain1, brain2, breast1, lung1, lung2) as a cohort.

The images, labels and baseline feature CSVs come from the ``pyradiomics-bhklab==3.1.4``
source distribution on PyPI, fetched once with pip into the user cache, verified against the
SHA-256 checksums in ``data/pyradiomics_sample.json``, and used offline afterwards. Sites
without network access can hand over the ``.tar.gz`` they downloaded elsewhere (``sdist=``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

from ..atomic import atomic_directory, atomic_path, write_text
from ..errors import InputError
from ..settings import cache_dir

Runner = Callable[[Sequence[str]], None]


def catalogue() -> dict:
    return json.loads(resources.files("rtresponse").joinpath("data/pyradiomics_sample.json").read_text(encoding="utf-8"))


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _python_executable() -> str:
    """The interpreter to run pip with: inside 3D Slicer ``sys.executable`` is the application."""
    if getattr(sys.modules.get("slicer"), "app", None) is not None:
        return shutil.which("PythonSlicer") or sys.executable
    return sys.executable


def _run_pip(args: Sequence[str]) -> None:
    result = subprocess.run([_python_executable(), "-m", "pip", "--disable-pip-version-check", *args, "--progress-bar", "off"],
                            capture_output=True)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode("utf-8", errors="replace")
        tail = output.strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"pip could not download the PyRadiomics sample data ({tail[0]}); without network "
                         "access, download the sdist elsewhere and pass it with --sdist")


def cache_folder(cache: str | os.PathLike | None = None) -> Path:
    info = catalogue()
    return Path(cache) if cache is not None else cache_dir() / f"{info['package']}-{info['version']}"


def _verified(folder: Path, files: dict[str, str]) -> list[str]:
    """Files in ``folder`` that are missing or whose checksum differs."""
    return [name for name, digest in files.items()
            if not (folder / name).is_file() or sha256(folder / name) != digest]


def fetch(cache: str | os.PathLike | None = None, sdist: str | os.PathLike | None = None,
          run_pip: Runner = _run_pip) -> Path:
    """The cache folder holding the verified sample files; downloads the sdist only if needed.

    ``sdist``: a local ``pyradiomics_bhklab-3.1.4.tar.gz`` to use instead of pip.
    ``run_pip``: runs ``pip <args>`` (injected by tests and by the Slicer module).
    """
    info = catalogue()
    folder = cache_folder(cache)
    if folder.is_dir() and not _verified(folder, info["files"]):
        return folder
    with tempfile.TemporaryDirectory(prefix="rtresponse-sdist-") as download:
        archive = Path(sdist) if sdist is not None else Path(download) / info["sdist"]
        if sdist is None:
            run_pip(["download", "--no-deps", "--no-binary", info["package"],
                     f"{info['package']}=={info['version']}", "-d", download])
            found = sorted(Path(download).glob("*.tar.gz"))
            if not found:
                raise InputError(f"pip downloaded no source distribution of {info['package']} {info['version']}")
            archive = found[0]
        if not archive.is_file():
            raise InputError("source distribution not found", path=str(archive))
        if sha256(archive) != info["sdist_sha256"]:
            raise InputError(f"checksum mismatch: this is not {info['sdist']} as published on PyPI",
                             path=str(archive))
        with atomic_directory(folder, overwrite=True) as staging:
            _extract(archive, info, staging)
            bad = _verified(staging, info["files"])
            if bad:
                raise InputError(f"checksum mismatch for {', '.join(bad)} inside the source distribution",
                                 path=str(archive))
    return folder


def _extract(archive: Path, info: dict, target: Path) -> None:
    wanted = {f"{info['root']}/{name}": name for name in info["files"]}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = wanted.get(member.name)
            if name is None or not member.isfile():
                continue
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(destination, "wb") as out:
                out.write(source.read())


def write_cohort(out_dir: str | os.PathLike, cache: str | os.PathLike | None = None,
                 sdist: str | os.PathLike | None = None, run_pip: Runner = _run_pip) -> Path:
    """Copy the five cases and baselines into ``out_dir`` with a ``manifest.csv``; returns its path.

    Manifest columns: ``image_scan`` (MR or CT, as the case is), ``mask_tumour`` (the label),
    ``clin_modality`` and ``clin_site``. Baseline CSVs go to ``out_dir/baseline``.
    """
    info = catalogue()
    source = fetch(cache, sdist, run_pip)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["patient_id,image_scan,mask_tumour,clin_modality,clin_site"]
    for case, meta in info["cases"].items():
        for kind in ("image", "label"):
            _copy(source / "data" / f"{case}_{kind}.nrrd", out / case / f"{kind}.nrrd")
        rows.append(f"{case},{case}/image.nrrd,{case}/label.nrrd,{meta['modality']},{meta['site']}")
    for name in info["files"]:
        if name.startswith("data/baseline/"):
            _copy(source / name, out / "baseline" / Path(name).name)
    _copy(source / "LICENSE.txt", out / "LICENSE-pyradiomics.txt")
    return write_text(out / "manifest.csv", "\n".join(rows) + "\n")


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
