"""Sample cohorts that work offline: ``synthetic`` (generated) and ``pyradiomics`` (real MR/CT cases)."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_directory
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


def sample_folder(kind: str, cache: str | os.PathLike | None = None) -> Path:
    """Where :func:`ensure_sample` keeps sample cohort ``kind``: ``cache``, or the user cache's ``samples/<kind>``."""
    if kind not in KINDS:
        raise InputError(f"unknown sample-data kind '{kind}' (choose {' or '.join(KINDS)})")
    return Path(cache) if cache is not None else cache_dir() / "samples" / kind


def cached_manifest(kind: str, cache: str | os.PathLike | None = None) -> Path | None:
    """The manifest of cohort ``kind`` when it is ready in the cache, else None (the manifest is written last, and a
    new folder appears whole: ``rtresponse sample-data`` and :func:`ensure_sample` stage it)."""
    manifest = sample_folder(kind, cache) / "manifest.csv"
    return manifest if manifest.is_file() else None


def ensure_sample(kind: str, cache: str | os.PathLike | None = None) -> Path:
    """The manifest of sample cohort ``kind`` in the user cache, made (or fetched) on first use."""
    manifest = cached_manifest(kind, cache)
    if manifest is not None:
        return manifest
    folder = sample_folder(kind, cache)
    if folder.exists():  # left by an interrupted run of an earlier version: completed in place
        return write(kind, folder)
    with atomic_directory(folder) as staging:
        write(kind, staging)
    return folder / "manifest.csv"
