"""Settings validation, device choice, and dependency installation with injected installers."""

from __future__ import annotations

import sys

import pytest

from rtresponse import dependencies
from rtresponse.errors import InputError
from rtresponse.settings import Settings, cache_dir, default_models_folder, default_weights_folder, resolve_device


def test_settings_validate_and_round_trip(tmp_path):
    settings = Settings(device="CPU", weights_folder=str(tmp_path), workers=3, models_folder=str(tmp_path / "m"))
    assert settings.device == "cpu"
    assert Settings.from_dict(settings.to_dict()) == settings
    assert Settings.from_dict({"models_folder": ""}).models_folder == str(default_models_folder())  # unset: default
    with pytest.raises(InputError, match="device must be one of auto, cpu, cuda"):
        Settings(device="tpu")
    with pytest.raises(InputError, match="workers must be at least 1"):
        Settings(workers=0)


def test_environment_overrides_cache_and_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("RTRESPONSE_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("RTRESPONSE_WEIGHTS", raising=False)
    assert cache_dir() == tmp_path / "c"
    assert default_weights_folder() == tmp_path / "c" / "weights"
    monkeypatch.setenv("RTRESPONSE_WEIGHTS", str(tmp_path / "w"))
    assert default_weights_folder() == tmp_path / "w"
    monkeypatch.setenv("RTRESPONSE_MODELS", str(tmp_path / "models"))
    assert default_models_folder() == tmp_path / "models" and Settings().models_folder == str(tmp_path / "models")


def test_device_resolution(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setitem(sys.modules, "torch", None)  # torch not installed
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="needs PyTorch"):
        resolve_device("cuda")


def test_missing_reports_only_the_requested_groups():
    installed = {"pandas", "yaml", "tqdm", "sklearn", "scipy", "joblib", "matplotlib"}
    todo = dependencies.missing(["core", "modelling"], is_installed=installed.__contains__)
    assert [r.pip for r in todo] == ["skops>=0.10"]
    both = dependencies.missing(["radiomics", "modelling"], is_installed=lambda module: False)
    assert [r.module for r in both].count("joblib") == 1  # needed by two groups, installed once
    with pytest.raises(ValueError, match="unknown dependency group"):
        dependencies.missing(["everything"])


def test_install_missing_routes_torch_to_the_torch_installer_with_the_tested_versions():
    installed = {"pandas", "yaml", "tqdm"}
    pip_calls, torch_calls = [], []
    done = dependencies.install_missing(["core", "deep"], pip_install=pip_calls.append,
                                        install_torch=lambda **versions: torch_calls.append(versions),
                                        is_installed=installed.__contains__)
    # PyTorchUtils' installTorch gets the versions the consent dialog lists (pyproject's pins)
    assert torch_calls == [{"torchVersionRequirement": "==2.14.1", "torchvisionVersionRequirement": "==0.29.1"}]
    assert pip_calls == [["timm>=1.0,<2", "monai>=1.4,<2", "optuna>=4,<6"]]  # one pip run: resolved together
    assert done == ["torch", "timm>=1.0,<2", "monai>=1.4,<2", "optuna>=4,<6"]
    text = dependencies.consent_text(dependencies.missing(["deep"], is_installed=installed.__contains__))
    assert "torch==2.14.1  (deep, via the PyTorch extension)" in text and "torchvision==0.29.1" in text


def test_install_missing_without_torch_installer_pins_torch_with_pip():
    pip_calls = []
    dependencies.install_missing(["deep"], pip_install=pip_calls.append, is_installed=lambda module: False)
    assert len(pip_calls) == 1 and {"torch==2.14.1", "torchvision==0.29.1"} <= set(pip_calls[0])


def test_pip_runs_with_constraints_that_keep_slicers_packages_and_the_installed_torch(tmp_path):
    """The constraints file is written after torch is installed, so that timm/monai cannot replace that torch
    either; Slicer's numpy, SimpleITK, requests and vtk stay at their installed versions."""
    versions = {"numpy": "1.26.4", "SimpleITK": "2.4.0", "requests": "2.32.3", "vtk": "9.4.20250513"}
    installed = {"pandas", "yaml", "tqdm"}

    def install_torch(**unused):
        versions.update(torch="2.14.1+cu128", torchvision="0.29.1+cu128")
        installed.update({"torch", "torchvision"})

    pip_calls = []
    constraints = tmp_path / "constraints.txt"
    dependencies.install_missing(["core", "deep", "radiomics"], pip_install=pip_calls.append,
                                 install_torch=install_torch, is_installed=installed.__contains__,
                                 constraints=constraints, version_of=versions.get)
    assert pip_calls == [["pyradiomics-bhklab==3.1.4", "joblib>=1.3", "timm>=1.0,<2", "monai>=1.4,<2",
                          "optuna>=4,<6", "-c", str(constraints)]]
    lines = constraints.read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["numpy==1.26.4", "SimpleITK==2.4.0", "requests==2.32.3", "vtk==9.4.20250513",
                         "torch==2.14.1+cu128", "torchvision==0.29.1+cu128"]
    # nothing to install: no pip run, no file
    pip_calls.clear()
    assert dependencies.install_missing(["core"], pip_install=pip_calls.append, is_installed=lambda m: True,
                                        constraints=tmp_path / "other.txt") == []
    assert pip_calls == [] and not (tmp_path / "other.txt").exists()


def test_constraints_leave_out_what_is_not_installed_and_read_real_versions():
    text = dependencies.constraints_text(version_of={"numpy": "2.1.0"}.get)
    assert text.splitlines()[1:] == ["numpy==2.1.0"]
    real = dependencies.constraints_text()  # this environment's numpy and SimpleITK
    import numpy
    import SimpleITK

    assert f"numpy=={numpy.__version__}" in real.splitlines()
    assert any(line.startswith("SimpleITK==") for line in real.splitlines()), real
    assert SimpleITK.Version.MajorVersion() >= 2


def test_version_mismatches_name_pinned_packages_at_another_version():
    versions = {"torch": "2.5.1+cu121", "torchvision": "0.29.1", "pyradiomics-bhklab": "3.1.4"}
    notes = dependencies.version_mismatches(["deep", "radiomics"], version_of=versions.get,
                                            is_installed=lambda module: True)
    assert notes == ["torch 2.5.1+cu121 installed (tested with 2.14.1)"]  # a local label (+cu121) is not a mismatch


def test_skip_and_consent_messages_name_the_packages():
    missing = dependencies.missing(["core", "radiomics"], is_installed={"yaml", "tqdm", "joblib"}.__contains__)
    message = dependencies.skip_message(missing)
    assert message == ("skipped: pandas>=1.5, pyradiomics-bhklab==3.1.4 not installed "
                       "(Radiotherapy Response > Python packages > Install)")
    consent = dependencies.consent_text(missing)
    assert "needs a C compiler" in consent and "numpy, SimpleITK, requests, vtk are kept" in consent


def test_pinned_torch_matches_pyproject():
    """The Slicer installer and the pip extras must ask for the same torch stack."""
    from conftest import REPO

    text = (REPO / "pyproject.toml").read_text()
    for requirement in dependencies.REQUIREMENTS:
        if requirement.torch or requirement.module == "radiomics":
            assert f'"{requirement.pip}"' in text, requirement.pip
    assert dependencies.torch_requirements()["torchVersionRequirement"] == "==2.14.1"
