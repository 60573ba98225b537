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


def test_install_missing_routes_torch_to_the_torch_installer():
    installed = {"pandas", "yaml", "tqdm"}
    pip_calls, torch_calls = [], []
    done = dependencies.install_missing(["core", "deep"], pip_install=pip_calls.append,
                                        install_torch=lambda: torch_calls.append(True),
                                        is_installed=installed.__contains__)
    assert torch_calls == [True]
    assert pip_calls == ["timm>=1.0,<2", "monai>=1.4,<2", "optuna>=4,<6"]
    assert done == ["torch", "timm>=1.0,<2", "monai>=1.4,<2", "optuna>=4,<6"]
    assert not any("torch" in call for call in pip_calls)


def test_install_missing_without_torch_installer_pins_torch_with_pip():
    pip_calls = []
    dependencies.install_missing(["deep"], pip_install=pip_calls.append, is_installed=lambda module: False)
    assert "torch==2.14.1" in pip_calls and "torchvision==0.29.1" in pip_calls


def test_pinned_torch_matches_pyproject():
    """The Slicer installer and the pip extras must ask for the same torch stack."""
    from conftest import REPO

    text = (REPO / "pyproject.toml").read_text()
    for requirement in dependencies.REQUIREMENTS:
        if requirement.torch or requirement.module == "radiomics":
            assert f'"{requirement.pip}"' in text, requirement.pip
