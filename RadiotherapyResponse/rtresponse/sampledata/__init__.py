"""Sample cohorts that work offline: ``synthetic`` (generated) and ``pyradiomics`` (real MR/CT cases)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..settings import cache_dir

KINDS = ("synthetic", "pyradiomics")


def write(kind: str, out_dir: str | os.PathLike, **options) -> Path:
    """Write sample cohort ``kind`` into ``out_dir``; returns the manifest path."""
    if kind == "synthetic":
        from .synthetic import write_cohort
    elif kind == "pyradiomics":
        from .pyradiomics import write_cohort
    else:
        raise InputError(f"unknown sample-data kind '{kind}' (choose {' or '.join(KINDS)})")
    return write_cohort(out_dir, **options)


def ensure_sample(kind: str, cache: str | os.PathLike | None = None) -> Path:
    """The manifest of sample cohort ``kind`` in the user cache, made (or fetched) on first use."""
    folder = Path(cache) if cache is not None else cache_dir() / "samples" / kind
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        return manifest
    return write(kind, folder)
