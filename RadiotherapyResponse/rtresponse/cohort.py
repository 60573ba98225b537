"""Cohort manifests: one CSV row per patient naming its images, masks, clinical factors and outcomes.

Columns:

``patient_id``
    required, unique, non-empty.
``image_<NAME>``
    path of an image (NRRD, NIfTI, MHA, a DICOM folder or one of its files); relative paths
    are relative to the manifest. Examples: ``image_CT``, ``image_PET``, ``image_T1``.
``mask_<NAME>``
    a label image (non-zero = inside) or a Slicer ``.seg.nrrd``; in a ``.seg.nrrd`` the
    segment named NAME is used (or its only segment). It must lie on the grid of one of the
    patient's images (a cropped ``.seg.nrrd`` sub-grid is fine). Examples: ``mask_GTVp``.
    A mask may also be an ROI of a DICOM RTSTRUCT: ``FILE#ROI`` (e.g. ``P001/RS.dcm#GTV_p 70``; the ROI
    name case-insensitive, the file path up to the first ``#`` that leaves an existing file), or an RTSTRUCT
    ``.dcm`` file alone (the ROI named NAME). Its contours are rasterised on the grid of the image asked for
    (default: the image whose DICOM series the RTSTRUCT references, else the first the contours lie on).
``suv_<NAME>``
    optional: what the values of ``image_<NAME>`` (a PET) are. ``bw``, ``lbm``, ``lbm-james``: SUV of that
    kind (a DICOM series in Bq/mL is converted when read, from its tags); ``bqml``: activity concentration.
    Empty or no column: what the file records (``rtresponse_units`` in the header, DICOM Units), else unknown.
    See :meth:`Cohort.suv_state`.
``clin_<NAME>``
    clinical factor, numeric or categorical; an empty cell is a missing value.
``outcome_<NAME>``
    an outcome (binary label, number, or text).

An empty image or mask cell means the patient has no such image or mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

PREFIXES = ("image_", "mask_", "clin_", "outcome_")
ID_COLUMN = "patient_id"
SUV_PREFIX = "suv_"  # the SUV state of image_<NAME>; not a data column
SUV_KINDS = ("bw", "lbm", "lbm-james")
SUV_VALUES = SUV_KINDS + ("bqml",)
PLAUSIBLE_SUV_MAX = 100.0  # a PET of unknown units whose largest value is above this looks like Bq/mL


class ManifestError(InputError):
    """A manifest with one or more problems; ``problems`` holds every one-line message."""

    def __init__(self, path, problems: list[str]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "invalid manifest"
        more = f" (and {len(self.problems) - 1} more problem(s); run `rtresponse validate --manifest {path}`)" \
            if len(self.problems) > 1 else ""
        super().__init__(first + more, path=str(path))


@dataclass(frozen=True)
class Patient:
    """One manifest row, with paths resolved and empty cells left out."""

    patient_id: str
    images: dict[str, Path] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)
    clinical: dict[str, object] = field(default_factory=dict)
    outcomes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SuvState:
    """What is known about a PET image's values (:meth:`Cohort.suv_state`).

    ``state``: ``suv`` (known SUV; ``kind`` bw, lbm or lbm-james), ``bqml`` (known activity concentration) or
    ``unknown``; ``source`` says how it is known; ``converted``: a DICOM series in Bq/mL turned into SUV on reading.
    """

    state: str
    kind: str = ""
    source: str = ""
    converted: bool = False

    @property
    def known_suv(self) -> bool:
        return self.state == "suv"


def _units_state(units: str) -> tuple[str, str]:
    """(state, kind) of a units text: SUVbw, SUV, GML -> suv bw; SUL (lbm), SUL -> suv lbm...; BQML -> bqml."""
    text = units.strip().upper().replace(" ", "")
    if text in ("GML", "SUV", "SUVBW", "G/ML"):
        return "suv", "bw"
    if text.startswith("SUL"):
        kind = text[4:-1].lower() if text.startswith("SUL(") and text.endswith(")") else "lbm"
        return "suv", kind if kind in SUV_KINDS else "lbm"
    if text in ("BQML", "BQ/ML"):
        return "bqml", ""
    return "unknown", ""


class Cohort:
    """A loaded manifest. Reading images is lazy: nothing is read until asked for."""

    def __init__(self, path: Path, table: "pd.DataFrame"):
        self.path = Path(path)
        self.table = table  # raw manifest, indexed by patient_id, cells as strings ('' = empty)

    # --- structure
    def _names(self, prefix: str) -> list[str]:
        return [c[len(prefix):] for c in self.table.columns if c.startswith(prefix)]

    @property
    def image_names(self) -> list[str]:
        return self._names("image_")

    @property
    def mask_names(self) -> list[str]:
        return self._names("mask_")

    @property
    def clinical_names(self) -> list[str]:
        return self._names("clin_")

    @property
    def outcome_names(self) -> list[str]:
        return self._names("outcome_")

    @property
    def patient_ids(self) -> list[str]:
        return list(self.table.index)

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Iterator[Patient]:
        return (self.patient(pid) for pid in self.patient_ids)

    def __repr__(self) -> str:
        return (f"Cohort({self.path.name}: {len(self)} patients; images {self.image_names}, masks {self.mask_names}, "
                f"clinical {self.clinical_names}, outcomes {self.outcome_names})")

    def known(self, patient_ids) -> list[str]:
        """``patient_ids`` (all patients when None) after checking that each is in the manifest."""
        if patient_ids is None:
            return self.patient_ids
        ids = [str(pid) for pid in patient_ids]
        unknown = [pid for pid in ids if pid not in self.table.index]
        if unknown:
            raise InputError(f"patient(s) {', '.join(unknown[:5])} not in the manifest "
                             f"(it has {', '.join(self.patient_ids[:5])}{', ...' if len(self) > 5 else ''})",
                             path=str(self.path))
        return ids

    def patient(self, patient_id: str) -> Patient:
        if patient_id not in self.table.index:
            raise InputError("not in the manifest", patient=str(patient_id), path=str(self.path))
        row = self.table.loc[patient_id]
        clinical = self.clinical().loc[patient_id]
        outcomes = self.outcomes().loc[patient_id]
        return Patient(
            patient_id=patient_id,
            images={n: self.resolve(row[f"image_{n}"]) for n in self.image_names if row[f"image_{n}"]},
            masks={n: self.mask_source(row[f"mask_{n}"])[0] for n in self.mask_names if row[f"mask_{n}"]},
            clinical={n: clinical[n] for n in self.clinical_names if not _missing(clinical[n])},
            outcomes={n: outcomes[n] for n in self.outcome_names if not _missing(outcomes[n])},
        )

    def resolve(self, cell: str) -> Path:
        path = Path(os.path.expanduser(cell))
        return path if path.is_absolute() else (self.path.parent / path)

    def mask_source(self, cell: str) -> tuple[Path, str | None]:
        """(file, ROI name) of a mask cell: ``FILE#ROI`` names an ROI of an RTSTRUCT; any other cell (file, None).

        The file part ends at the first ``#`` that leaves an existing file (file names may hold ``#``)."""
        whole = self.resolve(cell)
        if "#" not in cell or whole.exists():
            return whole, None
        marks = [i for i, char in enumerate(cell) if char == "#"]
        for at in marks:
            part = self.resolve(cell[:at].strip())
            if part.is_file():
                return part, cell[at + 1:].strip()
        return self.resolve(cell[:marks[0]].strip()), cell[marks[0] + 1:].strip()

    @property
    def suv_names(self) -> list[str]:
        """Images with a ``suv_`` column."""
        return self._names(SUV_PREFIX)

    def suv_state(self, patient_id: str, name: str) -> SuvState:
        """What is known about the values of image ``name`` (a PET): the ``suv_<name>`` cell, else what the file
        records (``rtresponse_units`` in its header, written by ``import-dicom``; a DICOM series' Units), else
        unknown. The manifest wins over the file."""
        from .imageio import image_units, is_dicom_path

        column = f"{SUV_PREFIX}{name}"
        declared = self.table.at[patient_id, column].strip().lower() if column in self.table.columns else ""
        path = self.image_path(patient_id, name)
        units, where = image_units(path) if path.exists() else ("", "")
        if declared in SUV_KINDS:
            if is_dicom_path(path) and _units_state(units)[0] == "bqml":
                return SuvState("suv", declared, f"DICOM series in Bq/mL converted to SUV ({column} {declared})",
                                converted=True)
            return SuvState("suv", declared, f"manifest column {column}")
        if declared == "bqml":
            return SuvState("bqml", "", f"manifest column {column}")
        state, kind = _units_state(units)
        return SuvState(state, kind, f"{where} {units}" if units else "")

    def pet_warning(self, patient_id: str, name: str, image: "sitk.Image | None" = None) -> str | None:
        """One line when PET ``name`` is not known to be SUV and looks like Bq/mL (its file or manifest says so, or
        its largest value is above ``PLAUSIBLE_SUV_MAX``); None otherwise. ``image``: the PET if already read."""
        import SimpleITK as sitk

        state = self.suv_state(patient_id, name)
        if state.known_suv:
            return None
        path = self.image_path(patient_id, name)
        if state.state == "bqml":
            why = f"{state.source} says Bq/mL"
        else:
            image = image if image is not None else self.read_image(patient_id, name)
            top = float(sitk.GetArrayViewFromImage(image).max())
            if top <= PLAUSIBLE_SUV_MAX:
                return None
            why = (f"largest value {top:.6g} > {PLAUSIBLE_SUV_MAX:g} and no SUV state: no {SUV_PREFIX}{name} column, "
                   "no SUV units in the file")
        return (f"patient {patient_id}: PET {path} looks like Bq/mL, not SUV ({why}); convert it (rtresponse "
                f"import-dicom, or {SUV_PREFIX}{name}=bw on its DICOM series), or write bw in a {SUV_PREFIX}{name} "
                "column if it is SUV")

    # --- tables
    def clinical(self) -> "pd.DataFrame":
        """Clinical factors (``clin_`` prefix dropped), numbers as numbers, missing as NaN."""
        return _typed(self.table, "clin_")

    def outcomes(self) -> "pd.DataFrame":
        """Outcomes (``outcome_`` prefix dropped), numbers as numbers, missing as NaN."""
        return _typed(self.table, "outcome_")

    # --- images
    def image_path(self, patient_id: str, name: str) -> Path:
        column = f"image_{name}"
        if column not in self.table.columns:
            raise InputError(f"no column {column} in the manifest (images: {', '.join(self.image_names) or 'none'})",
                             path=str(self.path))
        cell = self.table.at[patient_id, column]
        if not cell:
            raise InputError("no image given", patient=patient_id, column=column)
        return self.resolve(cell)

    def read_image(self, patient_id: str, name: str) -> "sitk.Image":
        from .imageio import read_image

        path = self.image_path(patient_id, name)
        try:
            image = read_image(path)
            column = f"{SUV_PREFIX}{name}"
            if column in self.table.columns and self.table.at[patient_id, column].strip().lower() in SUV_KINDS:
                state = self.suv_state(patient_id, name)
                if state.converted:
                    image = _dicom_to_suv(path, state.kind, image)
            return image
        except InputError as error:
            raise InputError(error.problem, patient=patient_id, column=f"image_{name}",
                             path=error.path or str(path)) from None

    def read_mask(self, patient_id: str, name: str, image: str | None = None,
                  reference: "sitk.Image | None" = None) -> "sitk.Image":
        """Mask ``name`` as uint8 on the grid of image ``image`` (default: the first image it fits).

        ``reference``: image ``image`` when the caller has already read it (saves reading it again).
        """
        from .imageio import align_mask, read_mask

        column = f"mask_{name}"
        if column not in self.table.columns:
            raise InputError(f"no column {column} in the manifest (masks: {', '.join(self.mask_names) or 'none'})",
                             path=str(self.path))
        cell = self.table.at[patient_id, column]
        if not cell:
            raise InputError("no mask given", patient=patient_id, column=column)
        path, roi = self.mask_source(cell)
        if roi is not None or _is_rtstruct(path):
            return self._rtstruct_mask(patient_id, name, path, roi or name, image, reference)
        try:
            mask = read_mask(path, segment=name)
        except InputError as error:
            raise InputError(error.problem, patient=patient_id, column=column, path=str(path)) from None
        candidates = [image] if image else [n for n in self.image_names if self.table.at[patient_id, f"image_{n}"]]
        problems = []
        for candidate in candidates:
            grid = reference if reference is not None and candidate == image else self.read_image(patient_id, candidate)
            try:
                return align_mask(mask, grid)
            except InputError as error:
                problems.append(f"image_{candidate}: {error.problem}")
        if not candidates:
            raise InputError("the patient has no image for this mask", patient=patient_id, column=column)
        raise InputError("mask fits none of the patient's images (" + "; ".join(problems) + ")",
                         patient=patient_id, column=column, path=str(path))


    def _rtstruct_mask(self, patient_id: str, name: str, path: Path, roi_name: str, image: str | None,
                       reference: "sitk.Image | None") -> "sitk.Image":
        """ROI ``roi_name`` of the RTSTRUCT ``path`` rasterised on image ``image``'s grid (default: the image whose
        DICOM series it references, else the first of the patient's images its contours lie on)."""
        from .dicom.rtstruct import rasterise, read_rtstruct

        column = f"mask_{name}"

        def error(problem):
            return InputError(problem, patient=patient_id, column=column, path=str(path))

        if not path.is_file():
            raise error("RTSTRUCT file not found")
        try:
            structure_set = read_rtstruct(path)
        except InputError as failure:
            raise error(failure.problem) from None
        rois = [r for r in structure_set.rois if r.name.strip().lower() == roi_name.strip().lower()]
        if not rois:
            raise error(f"no ROI named '{roi_name}' in the RTSTRUCT (ROIs: "
                        f"{', '.join(r.name for r in structure_set.rois) or 'none'})")
        if len(rois) > 1:
            raise error(f"{len(rois)} ROIs are named '{roi_name}' in the RTSTRUCT; rename one")
        roi = rois[0]
        candidates = [image] if image else self._referenced_first(
            patient_id, structure_set.referenced_series,
            [n for n in self.image_names if self.table.at[patient_id, f"image_{n}"]])
        if not candidates:
            raise error("the patient has no image for this mask")
        problems = []
        for candidate in candidates:
            grid = reference if reference is not None and candidate == image else self.read_image(patient_id, candidate)
            frame = self._dicom_value(patient_id, candidate, "0020|0052")
            wanted = roi.frame_of_reference or structure_set.frame_of_reference
            if frame and wanted and frame != wanted:
                problems.append(f"image_{candidate} is in frame of reference {frame}, ROI '{roi.name}' in {wanted}")
                continue
            try:
                return rasterise(roi, grid)
            except InputError as failure:
                problems.append(f"image_{candidate}: {failure.problem}")
        raise error("; ".join(problems) if len(candidates) == 1 else
                    f"ROI '{roi.name}' fits none of the patient's images (" + "; ".join(problems) + ")")

    def _dicom_value(self, patient_id: str, name: str, tag: str) -> str:
        """DICOM tag ``tag`` of image ``name`` when it is a DICOM series, else ''."""
        from .imageio import dicom_header_value, dicom_series_files, is_dicom_path

        path = self.image_path(patient_id, name)
        if not (path.is_file() or path.is_dir()) or not is_dicom_path(path):
            return ""
        try:
            files = dicom_series_files(path)
        except RuntimeError:
            return ""
        return dicom_header_value(files[0], tag) if files else ""

    def _referenced_first(self, patient_id: str, series_uids, names: list[str]) -> list[str]:
        referenced = [n for n in names if self._dicom_value(patient_id, n, "0020|000e") in set(series_uids)]
        return referenced + [n for n in names if n not in referenced]


def _is_rtstruct(path: Path) -> bool:
    """A ``.dcm`` file whose Modality is RTSTRUCT (False when pydicom is not installed)."""
    if path.suffix.lower() != ".dcm" or not path.is_file():
        return False
    try:
        import pydicom
    except ImportError:
        return False
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"], force=True)
    except Exception:  # noqa: BLE001 - not DICOM: read as an image, which names the problem
        return False
    return str(header.get("Modality", "")).upper() == "RTSTRUCT"


def _dicom_to_suv(path: Path, method: str, image: "sitk.Image") -> "sitk.Image":
    """``image`` (a DICOM PET series in Bq/mL read from ``path``) in SUV ``method``, from the series' tags."""
    import SimpleITK as sitk

    from .dicom.suv import series_suv_conversion
    from .imageio import dicom_series_files

    conversion = series_suv_conversion(dicom_series_files(path), method)
    converted = sitk.Cast(image, sitk.sitkFloat32) * conversion.factor
    converted.SetMetaData("rtresponse_units", "SUVbw" if method == "bw" else f"SUL ({method})")
    return converted


def file_fingerprint(paths, base=None) -> str:
    """A digest of each file's path, size and modification time (every file of a DICOM folder): changes when they do.
    With ``base``, paths inside it count relative to it, so a moved or renamed folder keeps its fingerprint."""
    import hashlib

    base = None if base is None else Path(base).resolve()
    parts = []
    for path in map(Path, paths):
        for item in (sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]):
            where = item.resolve()
            if base is not None and where.is_relative_to(base):
                where = where.relative_to(base)
            try:
                info = item.stat()
                parts.append(f"{where}|{info.st_size}|{info.st_mtime_ns}")
            except OSError:
                parts.append(f"{where}|missing")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _typed(table: "pd.DataFrame", prefix: str) -> "pd.DataFrame":
    import pandas as pd

    from .inputs import numeric_typos

    columns = [c for c in table.columns if c.startswith(prefix)]
    out = pd.DataFrame(index=table.index)
    for column in columns:
        typos = numeric_typos(table[column])
        if len(typos):  # one typo would silently turn a number into a many-category factor
            pid, value = next(iter(typos.items()))
            more = f" ({len(typos) - 1} more cell(s) like it)" if len(typos) > 1 else ""
            raise InputError(f"'{value}' is not a number but the column is numeric{more}; correct it or leave the "
                             "cell empty (missing)", patient=str(pid), column=column)
        values = table[column].replace("", None)
        numbers = pd.to_numeric(values, errors="coerce")
        # numeric when every non-empty cell parses as a number; otherwise keep the text
        out[column[len(prefix):]] = numbers if numbers.notna().sum() == values.notna().sum() else values
    return out


# --------------------------------------------------------------------------- loading

def _read_csv(path: Path) -> "pd.DataFrame":
    import pandas as pd

    from .inputs import csv_header, regular_file

    try:
        regular_file(path, "manifest file")
    except InputError as error:
        raise ManifestError(path, [error.problem]) from None
    try:
        # everything as text: ids like 007 stay 007, and empty cells stay empty strings
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        header = csv_header(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(path, [f"not a readable CSV ({str(error).splitlines()[0]})"]) from None
    # the names as written: pandas renames a repeated "x" to "x.1", which would hide the repeat
    table.columns = header if len(header) == table.shape[1] else [str(c).strip() for c in table.columns]
    return table.apply(lambda column: column.str.strip())


def _structure_problems(table: "pd.DataFrame") -> list[str]:
    problems = []
    if ID_COLUMN not in table.columns:
        return [f"required column '{ID_COLUMN}' is missing (columns: {', '.join(table.columns)})"]
    for column in table.columns:
        if column != ID_COLUMN and not column.startswith(PREFIXES + (SUV_PREFIX,)):
            problems.append(f"column {column}: unknown column prefix (expected {ID_COLUMN} or a column starting "
                            f"with {', '.join(PREFIXES)}, or {SUV_PREFIX} before an image name)")
        elif column.startswith(PREFIXES + (SUV_PREFIX,)) and column in PREFIXES + (SUV_PREFIX,):
            problems.append(f"column {column}: a name must follow the prefix (e.g. {column}CT)")
        elif column.startswith(SUV_PREFIX):
            problems += _suv_column_problems(table, column)
    duplicated = table.columns[table.columns.duplicated()].tolist()
    for column in duplicated:
        problems.append(f"column {column}: appears more than once")
    ids = table[ID_COLUMN] if ID_COLUMN in table.columns and not duplicated else None
    if ids is not None:
        for row, pid in enumerate(ids, start=2):  # line numbers as a spreadsheet shows them
            if not pid:
                problems.append(f"line {row}: patient_id is empty")
        for pid in sorted(set(ids[ids.duplicated() & (ids != "")])):
            lines = [str(i + 2) for i in range(len(ids)) if ids.iloc[i] == pid]
            problems.append(f"patient {pid}: duplicate patient_id (lines {', '.join(lines)})")
    if len(table) == 0:
        problems.append("the manifest has no patients")
    return problems


def _suv_column_problems(table: "pd.DataFrame", column: str) -> list[str]:
    image = "image_" + column[len(SUV_PREFIX):]
    if image not in table.columns:
        return [f"column {column}: there is no {image} column whose SUV state it gives"]
    problems = []
    ids = table[ID_COLUMN] if ID_COLUMN in table.columns else [""] * len(table)
    for pid, value in zip(ids, table[column]):
        if value and value.strip().lower() not in SUV_VALUES:
            problems.append(f"patient {pid}, column {column}: '{value}' is not one of {', '.join(SUV_VALUES)} (empty: "
                            "what the image file records)")
    return problems


def load_manifest(path: str | os.PathLike, check_files: bool = True) -> Cohort:
    """Load a manifest; raises :class:`ManifestError` (every problem listed) if it is malformed.

    ``check_files`` also checks that every referenced file exists (cheap). Reading images,
    empty masks and geometry are checked by :func:`validate_manifest`.
    """
    path = Path(path)
    table = _read_csv(path)
    problems = _structure_problems(table)
    if problems:
        raise ManifestError(path, problems)
    cohort = Cohort(path, table.set_index(ID_COLUMN, drop=True))
    if check_files:
        problems = list(_missing_files(cohort))
        if problems:
            raise ManifestError(path, problems)
    return cohort


def _missing_files(cohort: Cohort) -> Iterator[str]:
    for pid in cohort.patient_ids:
        for prefix, names in (("image_", cohort.image_names), ("mask_", cohort.mask_names)):
            for name in names:
                cell = cohort.table.at[pid, prefix + name]
                path = cohort.mask_source(cell)[0] if cell and prefix == "mask_" else cohort.resolve(cell)
                if cell and not path.exists():
                    yield f"patient {pid}, column {prefix}{name}: file not found ({path})"


def validate_manifest(path: str | os.PathLike, read_images: bool = True,
                      progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Every problem in a manifest as one line each (empty list: the manifest is fine).

    Besides structure and missing files, with ``read_images`` each image and mask is read:
    unreadable files, empty masks and masks that fit none of the patient's images are
    reported. Non-numeric values in an otherwise numeric clinical column are reported too.
    """
    path = Path(path)
    try:
        cohort = load_manifest(path, check_files=False)
        problems = []
    except ManifestError as error:
        cohort = _first_rows(path)
        if cohort is None:
            return error.problems
        problems = error.problems  # repeated or empty ids: the other rows are still checked
    problems += list(_missing_files(cohort))
    problems += _clinical_problems(cohort)
    if not read_images:
        return problems
    for count, pid in enumerate(cohort.patient_ids, start=1):
        problems += _patient_image_problems(cohort, pid)
        if progress:
            progress(count, len(cohort))
    return problems


def _clinical_problems(cohort: Cohort) -> list[str]:
    from .inputs import numeric_typos

    problems = []
    for name in cohort.clinical_names + cohort.outcome_names:
        column = f"clin_{name}" if name in cohort.clinical_names else f"outcome_{name}"
        # mostly numbers with a few text cells is almost always a typo ("6l" for 61)
        for pid, value in numeric_typos(cohort.table[column]).items():
            problems.append(f"patient {pid}, column {column}: '{value}' is not a number but the column is numeric")
    return problems


def _first_rows(path: Path) -> Cohort | None:
    """The manifest's rows with a non-empty id, each id's first row only; None if its columns are broken."""
    try:
        table = _read_csv(path)
    except ManifestError:
        return None
    if ID_COLUMN not in table.columns or table.columns.duplicated().any():
        return None
    table = table[(table[ID_COLUMN] != "") & ~table[ID_COLUMN].duplicated()]
    if not len(table) or any(not c.startswith(PREFIXES + (SUV_PREFIX,)) for c in table.columns if c != ID_COLUMN):
        return None
    return Cohort(path, table.set_index(ID_COLUMN, drop=True))


def _patient_image_problems(cohort: Cohort, pid: str) -> list[str]:
    import SimpleITK as sitk

    problems = []
    readable = {}
    for name in cohort.image_names:
        cell = cohort.table.at[pid, f"image_{name}"]
        if not cell or not cohort.resolve(cell).exists():
            continue
        try:
            readable[name] = cohort.read_image(pid, name)
        except InputError as error:
            problems.append(str(error))
    for name in cohort.mask_names:
        cell = cohort.table.at[pid, f"mask_{name}"]
        source, roi = cohort.mask_source(cell) if cell else (None, None)
        if not cell or not source.exists():
            continue
        column = f"mask_{name}"
        from .imageio import align_mask, read_mask

        if roi is not None or _is_rtstruct(source):  # an RTSTRUCT ROI: rasterised on the patient's image
            try:
                cohort.read_mask(pid, name)
            except InputError as error:
                problems.append(str(error))
            continue

        try:
            mask = read_mask(cohort.resolve(cell), segment=name)
        except InputError as error:
            problems.append(str(InputError(error.problem, patient=pid, column=column, path=error.path)))
            continue
        if not sitk.GetArrayViewFromImage(mask).any():
            problems.append(str(InputError("mask is empty", patient=pid, column=column, path=str(cohort.resolve(cell)))))
            continue
        if not readable:
            if not any(cohort.table.at[pid, f"image_{n}"] for n in cohort.image_names):
                problems.append(str(InputError("the patient has no image for this mask", patient=pid, column=column)))
            continue
        reasons = []
        for image_name, image in readable.items():
            try:
                align_mask(mask, image)
                break
            except InputError as error:
                reasons.append(f"image_{image_name}: {error.problem}")
        else:
            problems.append(str(InputError("mask geometry does not match the patient's image ("
                                           + "; ".join(reasons) + ")", patient=pid, column=column)))
    return problems
