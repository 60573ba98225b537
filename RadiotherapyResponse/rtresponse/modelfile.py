"""Model files that load without running code: a state dict plus plain values, read with ``weights_only=True``.

Every trained network of the library (recurrence U-Net, residual-tumour classifiers and
segmenters, the I3D head) is saved this way: ``{"format": <tag>, <plain fields>, "state_dict": ...}``,
written atomically; reading checks the tag so a file of one kind is never taken for another.
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import atomic_path
from .errors import InputError


def save_state(path: str | os.PathLike, format: str, network, **fields) -> Path:
    """Write ``network``'s state dict (on the CPU) with ``format`` and ``fields`` (plain values only)."""
    import torch

    state = {"format": format, **fields,
             "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def read_state(path: str | os.PathLike, format: str, what: str, kind: str) -> dict:
    """The saved dict; clear errors for a missing, unreadable or foreign file.

    ``what`` names the file in messages ("the classifier"), ``kind`` the expected kind
    ("residual-tumour classifier").
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what.removeprefix('the ')} file not found", path=str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure is an unreadable model for the user
        raise InputError(f"cannot read {what} (not a tensors-only PyTorch file)", path=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != format:
        raise InputError(f"not {kind} file (expected format {format})", path=str(path))
    return state
