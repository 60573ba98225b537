"""Checks shared by every reader of user input: files, CSV tables, numeric columns, voxel values.

Each check raises :class:`~rtresponse.errors.InputError` naming the file, patient and column
and what is wrong, so the command line, the library and the Slicer modules say the same thing.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

ID_COLUMN = "patient_id"


# --------------------------------------------------------------------------- files

def regular_file(path: str | os.PathLike, what: str = "file", folder_ok: bool = False) -> Path:
    """``path`` if it is a regular file (or a folder, with ``folder_ok``); else an InputError.

    Named pipes, devices and sockets are refused before anything opens them: reading a
    pipe blocks forever.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=str(path)) from None
    except OSError as error:
        raise InputError(f"cannot open {what} ({error.strerror})", path=str(path)) from None
    if stat.S_ISDIR(mode):
        if folder_ok:
            return path
        raise InputError(f"{what} is a folder, not a file", path=str(path))
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} is not a regular file (a pipe, device or socket)", path=str(path))
    return path


# --------------------------------------------------------------------------- tables

def csv_header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV file as written (pandas renames a repeated name ``x`` to ``x.1``)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [name.strip() for name in next(csv.reader(handle), [])]


def repeated(names: Sequence[str]) -> list[str]:
    seen, twice = set(), []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    return twice


def read_table(path: str | os.PathLike, what: str = "the table", text: bool = False) -> "pd.DataFrame":
    """A CSV file as a DataFrame: patient ids stay text (``007``), repeated column names are refused.

    ``text``: every cell as text and empty cells as ``''`` (manifests); otherwise numbers are
    parsed and empty cells are missing.
    """
    import pandas as pd

    path = regular_file(path, what.removeprefix("the "))
    try:
        header = csv_header(path)
        if text:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        else:
            frame = pd.read_csv(path, dtype={ID_COLUMN: str})
    except (OSError, UnicodeDecodeError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"cannot read {what} ({str(error).splitlines()[0]})", path=os.fspath(path)) from None
    twice = repeated(header)
    if twice:
        raise InputError(f"column {twice[0]} appears more than once in {what}", path=os.fspath(path))
    return frame


def finite_table(frame: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """``frame`` if no value is infinite; NaN (missing) is left to the model's imputer."""
    values = frame.to_numpy(dtype=float)
    bad = np.isinf(values)
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise InputError(f"value {values[row, column]} is infinite ({int(bad.sum())} infinite value(s) in all)",
                         patient=str(frame.index[row]), column=str(frame.columns[column]), path=label)
    return frame


def numeric_typos(values: "pd.Series") -> "pd.Series":
    """The text cells of a column that is otherwise numbers (``5b`` among ages): almost always typos.

    Empty cells are missing values, not typos. A column where text is common is categorical.
    """
    import pandas as pd

    filled = values[values.notna() & (values.astype(str).str.strip() != "")]
    numbers = pd.to_numeric(filled, errors="coerce")
    bad = filled[numbers.isna()]
    if 0 < len(bad) <= max(1, len(filled) // 5) and len(filled) >= 3:
        return bad
    return bad.iloc[:0]


# --------------------------------------------------------------------------- images and masks

def require_image(image, what: str = "image") -> "sitk.Image":
    """``image`` if it is a SimpleITK image; a numpy array or a path gets a message saying what to pass."""
    import SimpleITK as sitk

    if isinstance(image, sitk.Image):
        return image
    hint = " (read it with rtresponse.imageio.read_image, or sitk.GetImageFromArray plus its spacing and origin)" \
        if isinstance(image, np.ndarray) else ""
    raise InputError(f"{what} must be a SimpleITK image, got {type(image).__module__}.{type(image).__name__}{hint}")


def finite_voxels(image: "sitk.Image", path: str | None = None, what: str = "image") -> "sitk.Image":
    """``image`` if every voxel is a finite number (integer images always are)."""
    import SimpleITK as sitk

    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return image
    voxels = sitk.GetArrayViewFromImage(image)
    bad = ~np.isfinite(voxels)
    if bad.any():
        kinds = " and ".join(k for k, n in (("NaN", np.isnan(voxels).any()), ("infinite", np.isinf(voxels).any())) if n)
        share = "every voxel" if bad.all() else f"{int(bad.sum())} of {voxels.size} voxels"
        raise InputError(f"{what} has {kinds} values ({share})", path=path)
    return image


def binary_mask(image: "sitk.Image", path: str | None = None) -> "sitk.Image":
    """A uint8 0/1 mask from a label image: non-zero voxels of one label are inside.

    Refused, because taking them as "non-zero" would be silently wrong: NaN or infinite
    voxels (NaN != 0 would put them inside), float values other than 0 and 1 (a probability
    map: threshold it first), and several labels (a label map of several structures: give
    each its own mask, or a ``.seg.nrrd`` with named segments).
    """
    import SimpleITK as sitk

    image = require_image(image, "mask")
    finite_voxels(image, path, "mask")
    voxels = sitk.GetArrayViewFromImage(image)
    labels = np.unique(voxels)
    labels = labels[labels != 0]
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64) and np.any(labels != 1):
        odd = labels[labels != 1]
        raise InputError(f"mask has values other than 0 and 1 (e.g. {odd[0]:g}): a probability map? threshold it "
                         "into a 0/1 mask first", path=path)
    if len(labels) > 1:
        shown = ", ".join(f"{v:g}" for v in labels[:6]) + (", ..." if len(labels) > 6 else "")
        raise InputError(f"mask holds several labels ({shown}): save each structure as its own mask, or as "
                         "named segments of a .seg.nrrd", path=path)
    return sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)


def model_matrix(X, estimator=None, who: str = "X"):
    """``X`` (rows = patients) checked for a model: no infinite value; NaN only if ``estimator`` imputes.

    Names the row (patient) and column at fault; ``estimator`` None means the caller imputes.
    """
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
    values = frame.to_numpy(dtype=float)
    for bad, what in ((np.isinf(values), "infinite"), (np.isnan(values), "missing (NaN)")):
        if what.startswith("missing") and (estimator is None or _imputes(estimator)):
            continue
        if bad.any():
            row, column = map(int, np.argwhere(bad)[0])
            extra = ": impute them first, or put the classifier behind an imputer (as run_grid does)" \
                if what.startswith("missing") else ""
            raise InputError(f"{who} has {int(bad.sum())} {what} value(s), first at row {frame.index[row]}, "
                             f"column {frame.columns[column]}{extra}")
    return X


def _imputes(estimator) -> bool:
    steps = getattr(estimator, "steps", None) or []
    return any("Imputer" in type(step).__name__ for _, step in steps) or "Imputer" in type(estimator).__name__
