"""Model files that load without running code: a state dict plus plain values, read with ``weights_only=True``.

Every trained network of the library (recurrence U-Net, residual-tumour classifiers and
segmenters, the I3D head) is saved this way: ``{"format": <tag>, <plain fields>, "state_dict": ...}``,
written atomically; reading checks the tag so a file of one kind is never taken for another.
A file someone hands us can still be hostile or damaged: a zip bomb, a pickle renamed ``.pt``,
the right tag with settings or weights that do not fit. Every such file is one
:class:`~rtresponse.errors.InputError` naming it: :func:`read_state` for the file,
:func:`file_settings` while a network is rebuilt from its settings, :func:`load_weights` for the
weights.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .atomic import atomic_path
from .errors import InputError
from .safezip import MAX_TOTAL_BYTES, check_zip


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
    check_torch_file(path, f"a {what.removeprefix('the ')} file")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure is an unreadable model for the user
        raise InputError(f"cannot read {what} (not a tensors-only PyTorch file; files that need pickled code "
                         "to load are refused)", path=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != format:
        raise InputError(f"not {kind} file (expected format {format})", path=str(path))
    return state


def check_torch_file(path: str | os.PathLike, what: str) -> None:
    """Refuse a zip bomb or odd member names in a PyTorch zip file before torch reads it.

    ``what`` names the file in messages ("a weights file"). PyTorch stores tensors uncompressed,
    so a real file unpacks to about its own size: the limit is 2 GiB or twice the file, whichever
    is larger (ImageNet weights can exceed 2 GiB). Files that are not zip archives (PyTorch's
    legacy format, or a pickle renamed ``.pt``) are left to ``torch.load(weights_only=True)``,
    which refuses pickled code.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path):
            pass
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    check_zip(path, what, max_total=max(MAX_TOTAL_BYTES, 2 * path.stat().st_size))


def first_problem(error: BaseException) -> str:
    """One short line about ``error``: for a ``load_state_dict`` error the line naming keys or shapes
    ("Missing key(s) ...", "size mismatch ..."), else its first line."""
    if isinstance(error, KeyError):
        return f"missing {error.args[0]!r}" if error.args else "a missing entry"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines and lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1:
        detail = lines[1]
    else:
        detail = lines[0] if lines else type(error).__name__
    return detail if len(detail) <= 200 else detail[:197] + "..."


@contextmanager
def file_settings(path: str | os.PathLike):
    """Around rebuilding a network from a read file's settings: any failure (a missing field, a
    value of the wrong type, an unknown architecture) becomes one InputError naming the file."""
    try:
        yield
    except InputError as error:
        if error.path is not None:
            raise
        raise InputError(error.problem, patient=error.patient, column=error.column, node=error.node,
                         path=str(path)) from None
    except Exception as error:  # noqa: BLE001 - the settings came from the file
        raise InputError(f"the file's settings do not describe a network this program can build "
                         f"({first_problem(error)})", path=str(path)) from None


def load_weights(network, state: dict, path: str | os.PathLike):
    """Copy the file's ``state_dict`` into ``network`` (strictly: every key, every shape).

    Missing or unexpected keys and shapes that differ are one InputError naming the file.
    """
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise InputError("the file holds no weights (no state_dict)", path=str(path))
    try:
        network.load_state_dict(weights)
    except Exception as error:  # noqa: BLE001 - RuntimeError for keys / shapes, TypeError for non-tensors
        raise InputError(f"the file's weights do not fit the network ({first_problem(error)})",
                         path=str(path)) from None
    return network
