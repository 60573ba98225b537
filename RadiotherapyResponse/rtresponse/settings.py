"""User settings shared by the CLI and the Slicer modules: compute device, weights folder, workers, models folder,
scheduler (where cohort-scale work runs: :mod:`rtresponse.execution`).

Inside Slicer the hub module stores these in Slicer's settings (``RadiotherapyResponse/...``
keys); outside, environment variables override the defaults. The library only ever sees a
:class:`Settings` value, so it never depends on where the settings were kept.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError

DEVICES = ("auto", "cpu", "cuda")
SETTINGS_PREFIX = "RadiotherapyResponse"  # QSettings group used by the Slicer hub module
FIELDS = ("device", "weights_folder", "workers", "models_folder", "scheduler")
SCHEDULER_ENV = "RTRESPONSE_SCHEDULER"  # the --scheduler default of the cohort commands (rtresponse.execution)


def cache_dir() -> Path:
    """Per-user cache (sample data, downloaded weights): ``$RTRESPONSE_CACHE`` or ``~/.cache/rtresponse``."""
    override = os.environ.get("RTRESPONSE_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtresponse"


def default_weights_folder() -> Path:
    """Where pretrained weights are looked up: ``$RTRESPONSE_WEIGHTS`` or the cache's ``weights``."""
    override = os.environ.get("RTRESPONSE_WEIGHTS")
    return Path(override).expanduser() if override else cache_dir() / "weights"


def default_models_folder() -> Path:
    """Where models trained in Slicer go (each training in a new sub-folder): ``$RTRESPONSE_MODELS`` or
    ``~/RadiotherapyResponse/models`` (user data, not a cache: it is never cleaned)."""
    override = os.environ.get("RTRESPONSE_MODELS")
    return Path(override).expanduser() if override else Path.home() / "RadiotherapyResponse" / "models"


def _default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


@dataclass
class Settings:
    """Compute settings. ``device`` is ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ``models_folder``:
    where the Slicer modules put the models they train."""

    device: str = field(default_factory=lambda: os.environ.get("RTRESPONSE_DEVICE", "auto"))
    weights_folder: str = field(default_factory=lambda: str(default_weights_folder()))
    workers: int = field(default_factory=_default_workers)
    models_folder: str = field(default_factory=lambda: str(default_models_folder()))
    scheduler: str = field(default_factory=lambda: os.environ.get(SCHEDULER_ENV, ""))

    def __post_init__(self):
        self.device = str(self.device).lower()
        if self.device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        self.workers = int(self.workers)
        if self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}")
        self.weights_folder = str(Path(self.weights_folder).expanduser())
        self.models_folder = str(Path(self.models_folder).expanduser())
        from .execution import check_scheduler

        self.scheduler = check_scheduler(self.scheduler)  # "" = local; local-cluster[:N], tcp://..., a .yaml

    def job_environment(self) -> dict:
        """Environment variables a background job (``rtresponse ...`` in a child process) needs to follow these
        settings: the scheduler, so a cohort job started from Slicer runs on the chosen cluster."""
        return {SCHEDULER_ENV: self.scheduler}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        known = {k: v for k, v in values.items() if k in FIELDS and v not in (None, "")}
        return cls(**known)


def resolve_device(device: str = "auto") -> str:
    """``cpu`` or ``cuda``. ``auto`` picks CUDA when torch sees a GPU; asking for CUDA without one is an error.

    Imports torch only when it has to look (``auto``/``cuda``).
    """
    device = str(device).lower()
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    if device == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise InputError("device 'cuda' needs PyTorch, which is not installed") from None
        return "cpu"
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise InputError("device 'cuda' was requested but PyTorch sees no CUDA GPU; choose 'cpu' or 'auto'")
    return "cuda" if available else "cpu"


def autocast(device: str, amp: bool):
    """Mixed-precision context for ``device`` when ``amp``, else a no-op context.

    bfloat16 keeps float32's range (float16 overflowed in some networks, bench/deep2d_gpu_check.py);
    float16 only on GPUs without bfloat16.
    """
    import contextlib

    if not amp:
        return contextlib.nullcontext()
    import torch

    half = torch.float16 if device == "cuda" and not torch.cuda.is_bf16_supported() else torch.bfloat16
    return torch.autocast(device_type=device, dtype=half)


TASK_TORCH_THREADS = 1  # torch threads of a cohort task's network passes, wherever it runs (see task_torch_threads)


def task_torch_threads():
    """Context: torch on :data:`TASK_TORCH_THREADS` intra-op threads, restored after.

    A cohort task (a deep-feature chunk, an I3D patient, a recurrence or residual prediction) runs its network
    passes under it, locally and on Dask workers alike: sums are then split the same way wherever the task runs
    (1 and 2 threads differ by ~1e-7 in float32), so the numbers are identical. Parallelism comes from tasks
    (``--jobs``, Dask workers), not from threads inside one.
    """
    import contextlib

    @contextlib.contextmanager
    def fixed():
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(TASK_TORCH_THREADS)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return fixed()
