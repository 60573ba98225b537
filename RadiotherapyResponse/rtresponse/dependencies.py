"""Which Python packages each capability needs, and installing the missing ones on request.

Inside 3D Slicer nothing is installed at import or in a widget's constructor: the hub module
asks the user first, then calls :func:`install_missing` with Slicer's installers injected
(``slicer.util.pip_install`` and the PyTorch extension's ``installTorch``), so the logic here
is testable without Slicer. Packages Slicer ships (numpy, SimpleITK, vtk) are never listed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable, Iterable


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
    # inside Slicer PyRadiomics normally comes with the SlicerRadiomics extension (found first)
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
)
GROUPS = tuple(dict.fromkeys(r.group for r in REQUIREMENTS))


def _is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing(groups: Iterable[str] = GROUPS, is_installed: Callable[[str], bool] = _is_installed) -> list[Requirement]:
    """Requirements of ``groups`` whose module cannot be imported."""
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


def install_missing(groups: Iterable[str], pip_install: Callable[[str], object],
                    install_torch: Callable[[], object] | None = None,
                    is_installed: Callable[[str], bool] = _is_installed) -> list[str]:
    """Install what ``groups`` lack; returns the pip specs (or 'torch') that were installed.

    ``pip_install`` takes one requirement string (Slicer: ``slicer.util.pip_install``).
    ``install_torch`` installs torch and torchvision (Slicer: PyTorchUtils' ``installTorch``);
    without it torch is installed with ``pip_install`` like the rest.
    """
    todo = missing(groups, is_installed)
    done: list[str] = []
    torch_needed = [r for r in todo if r.torch]
    if torch_needed:
        if install_torch is not None:
            install_torch()
            done.append("torch")
        else:
            for requirement in torch_needed:
                pip_install(requirement.pip)
                done.append(requirement.pip)
    for requirement in todo:
        if not requirement.torch:
            pip_install(requirement.pip)
            done.append(requirement.pip)
    return done
