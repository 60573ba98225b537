"""Which Python packages each capability needs, which 3D Slicer runs them, and installing the missing ones.

Inside 3D Slicer nothing is installed at import or in a widget's constructor: the hub module
asks the user first, then calls :func:`install_missing` with Slicer's installers injected
(``slicer.util.pip_install`` and the PyTorch extension's ``installTorch``), so the logic here
is testable without Slicer. Packages Slicer ships (numpy, SimpleITK, requests, vtk) are never
listed, and every pip run gets a constraints file (:func:`constraints_text`) that keeps them,
and the PyTorch extension's torch, at the versions installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

# The oldest 3D Slicer the extension supports, and the Python it runs: Slicer 5.8 runs Python 3.9.10, which the
# pinned torch stack (torch 2.14.1 needs Python >= 3.10) and the code (``X | Y`` at module level) do not support;
# Slicer 5.10.0 is the first release on a newer Python, 3.12.10 (Slicer's CMakeLists.txt and
# SuperBuild/External_python.cmake at tags v5.8.1 and v5.10.0). README, CMakeLists.txt and the tests check against
# these; outside Slicer the library needs LIBRARY_PYTHON (pyproject's requires-python).
MINIMUM_SLICER = "5.10"
SLICER_PYTHON = (3, 12)
LIBRARY_PYTHON = (3, 10)
# Slicer's own packages: pip must never replace them (a constraints file pins each to the installed version).
SLICER_PACKAGES = ("numpy", "SimpleITK", "requests", "vtk")
# Installed by the PyTorch extension: pinned too, so that timm or monai never pull another torch from PyPI.
TORCH_PACKAGES = ("torch", "torchvision")
SKIP_HINT = "Radiotherapy Response > Python packages > Install"


@dataclass(frozen=True)
class Requirement:
    module: str     # import name checked with importlib
    pip: str        # what pip installs
    group: str      # capability that needs it
    torch: bool = False  # installed through the PyTorch extension inside Slicer, never with plain pip


REQUIREMENTS = (
    Requirement("pandas", "pandas>=1.5", "core"),
    Requirement("yaml", "pyyaml>=6", "core"),
    Requirement("tqdm", "tqdm>=4.60", "core"),
    # PyRadiomics' `radiomics` package: pyradiomics 3.1.0's sdist does not build on numpy 2 / Python >= 3.11, this
    # one does (an sdist too: pip compiles its C extension, so it needs a C compiler on first install)
    Requirement("radiomics", "pyradiomics-bhklab==3.1.4", "radiomics"),
    Requirement("joblib", "joblib>=1.3", "radiomics"),
    Requirement("sklearn", "scikit-learn>=1.6", "modelling"),
    Requirement("scipy", "scipy>=1.10", "modelling"),
    Requirement("joblib", "joblib>=1.3", "modelling"),
    Requirement("matplotlib", "matplotlib>=3.7", "modelling"),  # heat maps and ROC figures
    Requirement("skops", "skops>=0.10", "modelling"),
    Requirement("torch", "torch==2.14.1", "deep", torch=True),
    Requirement("torchvision", "torchvision==0.29.1", "deep", torch=True),
    Requirement("timm", "timm>=1.0,<2", "deep"),
    Requirement("monai", "monai>=1.4,<2", "deep"),
    Requirement("optuna", "optuna>=4,<6", "deep"),  # I3D head hyper-parameter search
    # DICOM out to the planning system (as pyproject's [dicom]): pydicom reads, rt-utils writes RTSTRUCT (with
    # OpenCV's contour tracer, below 4.12 for numpy 1.x), highdicom DICOM-SEG
    Requirement("pydicom", "pydicom>=3.0.1,<4", "dicom"),
    Requirement("highdicom", "highdicom>=0.23,<0.29", "dicom"),
    Requirement("rt_utils", "rt-utils>=1.2.7,<2", "dicom"),
    Requirement("cv2", "opencv-python>=4.8,<4.12", "dicom"),
)
GROUPS = tuple(dict.fromkeys(r.group for r in REQUIREMENTS))


def _is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (pip's name), or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing(groups: Iterable[str] = GROUPS, is_installed: Callable[[str], bool] | None = None) -> list[Requirement]:
    """Requirements of ``groups`` whose module cannot be imported (``is_installed``: by default, importlib's)."""
    is_installed = is_installed or _is_installed
    groups = set(groups)
    unknown = groups - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown dependency group(s): {', '.join(sorted(unknown))}; known: {', '.join(GROUPS)}")
    todo, seen = [], set()
    for requirement in REQUIREMENTS:
        if requirement.group in groups and requirement.module not in seen and not is_installed(requirement.module):
            seen.add(requirement.module)  # a module two groups need is installed once
            todo.append(requirement)
    return todo


def skip_message(missing_requirements: Iterable[Requirement]) -> str:
    """Why a self-test is skipped: the packages it lacks and where to install them."""
    names = ", ".join(dict.fromkeys(r.pip for r in missing_requirements))
    return f"skipped: {names} not installed ({SKIP_HINT})"


def consent_text(missing_requirements: Iterable[Requirement]) -> str:
    """What the consent dialog says before :func:`install_missing`: each package with its version and how it is
    installed, and what is protected."""
    missing_requirements = list(missing_requirements)
    lines = ["These Python packages will be downloaded and installed:"]
    for r in missing_requirements:
        lines.append(f"  {r.pip}  ({r.group}{', via the PyTorch extension' if r.torch else ''})")
    if any(r.module == "radiomics" for r in missing_requirements):
        lines.append("PyRadiomics is built from source: this needs a C compiler (on Windows, the Visual Studio "
                     "Build Tools).")
    lines += [f"Slicer's own {', '.join(SLICER_PACKAGES)} are kept as they are.",
              "", "This can take several minutes. Continue?"]
    return "\n".join(lines)


def version_requirement(requirement: Requirement) -> str:
    """The version part of a pip requirement: ``"==2.14.1"`` for ``torch==2.14.1``, ``""`` without one."""
    name = requirement.pip
    for index, character in enumerate(name):
        if character in "<>=!~ ;[":
            return name[index:].strip()
    return ""


def torch_requirements() -> dict[str, str]:
    """Arguments of PyTorchUtils' ``installTorch`` that ask for the tested torch stack (the versions pyproject pins):
    ``{"torchVersionRequirement": "==2.14.1", "torchvisionVersionRequirement": "==0.29.1"}``."""
    versions = {r.module: version_requirement(r) for r in REQUIREMENTS if r.torch}
    return {"torchVersionRequirement": versions["torch"], "torchvisionVersionRequirement": versions["torchvision"]}


def constraints_text(version_of: Callable[[str], str | None] = installed_version,
                     packages: Iterable[str] = SLICER_PACKAGES + TORCH_PACKAGES) -> str:
    """A pip constraints file (``pip install -c``) that keeps ``packages`` at their installed versions; a package
    that is not installed is left out (pip may then install it, which a constraint could not forbid anyway)."""
    lines = ["# Written by the RadiotherapyResponse extension before a pip install: keep these as installed."]
    for package in packages:
        version = version_of(package)
        if version:
            lines.append(f"{package}=={version}")
    return "\n".join(lines) + "\n"


def write_constraints(path: str | os.PathLike, version_of: Callable[[str], str | None] = installed_version) -> Path:
    """Write :func:`constraints_text` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(constraints_text(version_of), encoding="utf-8")
    return path


def version_mismatches(groups: Iterable[str] = GROUPS, version_of: Callable[[str], str | None] = installed_version,
                       is_installed: Callable[[str], bool] | None = None) -> list[str]:
    """Pinned (``==``) packages of ``groups`` that are installed at another version, in words; they are left alone
    (replacing torch would break the extensions that installed it) but the tested stack is the pinned one."""
    notes, groups, is_installed = [], set(groups), is_installed or _is_installed
    for requirement in REQUIREMENTS:
        wanted = version_requirement(requirement)
        if requirement.group not in groups or not wanted.startswith("==") or not is_installed(requirement.module):
            continue
        distribution = requirement.pip[:len(requirement.pip) - len(wanted)]
        version = version_of(distribution)
        if version and version.split("+")[0] != wanted[2:]:
            notes.append(f"{distribution} {version} installed (tested with {wanted[2:]})")
    return list(dict.fromkeys(notes))


def install_missing(groups: Iterable[str], pip_install: Callable[[list[str]], object],
                    install_torch: Callable[..., object] | None = None,
                    is_installed: Callable[[str], bool] | None = None,
                    constraints: str | os.PathLike | None = None,
                    version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """Install what ``groups`` lack; returns the pip specs (or 'torch') that were installed.

    ``pip_install`` takes a list of pip arguments (Slicer: ``slicer.util.pip_install``, which accepts a list in
    Slicer 5.10 and later); the missing packages go in one call so that pip resolves them together.
    ``install_torch`` installs torch and torchvision and is called with :func:`torch_requirements` as keyword
    arguments (Slicer: PyTorchUtils' ``installTorch``); without it torch is pip-installed at the pinned version.
    ``constraints``: a file path; when given, :func:`constraints_text` is written there after torch is installed
    and passed as ``-c`` so that pip keeps Slicer's numpy, SimpleITK, requests and vtk, and the torch just installed.
    """
    todo = missing(groups, is_installed)
    done: list[str] = []
    torch_needed = [r for r in todo if r.torch]
    if torch_needed and install_torch is not None:
        install_torch(**torch_requirements())
        done.append("torch")
        todo = [r for r in todo if not r.torch]
    specs = [r.pip for r in todo]
    if specs:
        arguments = list(specs)
        if constraints is not None:
            arguments += ["-c", str(write_constraints(constraints, version_of))]
        pip_install(arguments)
        done += specs
    return done
