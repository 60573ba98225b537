"""PET activity concentration (Bq/mL) to standardised uptake values.

Body-weight SUV (``bw``)::

    SUVbw = C [Bq/mL] x weight [g] / (injected dose [Bq] x 2^(-(t_scan - t_injection) / half-life))

Lean-body-mass SUV (``lbm``, SUL): the same with the lean body mass in grams, from Janmahasatian et al. (2005)
(EANM guideline) — male 9270 W / (6680 + 216 BMI), female 9270 W / (8780 + 244 BMI), W in kg, BMI W / H^2 with
H in m — or ``lbm-james`` (James 1976, PERCIST 1.0): male 1.10 W - 128 (W / H_cm)^2, female 1.07 W - 148 (W / H_cm)^2.

Tags used (the error names the first one missing): Units (0054,1001) BQML (GML: already SUVbw, kept);
Decay Correction (0054,1102) START or ADMIN; Patient's Weight (0010,1030); in the Radiopharmaceutical
Information Sequence (0054,0016): Radionuclide Total Dose (0018,1074), Radionuclide Half Life (0018,1075) and
Radiopharmaceutical Start DateTime (0018,1078) or Start Time (0018,1072, on the Series Date); for LBM Patient's
Size (0010,1020) and Patient's Sex (0010,0040).

Scan time (the time the image's activity is decay-corrected to, DecayCorrection START): Series Date + Series
Time, unless that is later than the earliest Acquisition Date + Time of the series' slices (a series created
after the acquisition by reconstruction), then that earliest acquisition time — the QIBA vendor-neutral rule
without vendor-private tags. With DecayCorrection ADMIN the images are already corrected to the injection time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from ..errors import InputError

METHODS = ("bw", "lbm", "lbm-james")


@dataclass
class SUVConversion:
    """SUV = value x ``factor``; ``record`` holds every number used (for the report and provenance)."""

    factor: float
    method: str
    record: dict = field(default_factory=dict)


def _tag(dataset, keyword: str, tag: str, where: str, what: str = ""):
    value = dataset.get(keyword)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"cannot compute SUV{what}: {_pretty(keyword)} {tag} is missing", path=where)
    return value


def _pretty(keyword: str) -> str:
    import re

    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword).replace("Patient ", "Patient's ")


def _number(dataset, keyword: str, tag: str, where: str, what: str = "") -> float:
    value = _tag(dataset, keyword, tag, where, what)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"cannot compute SUV{what}: {_pretty(keyword)} {tag} is not a number ({value!r})",
                         path=where) from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(f"cannot compute SUV{what}: {_pretty(keyword)} {tag} must be positive, got {value!r}",
                         path=where)
    return number


def parse_datetime(date: str, time: str) -> dt.datetime:
    """DICOM DA + TM (HHMMSS.ffffff, HHMM, HH, or the old HH:MM:SS) as a datetime."""
    date, time = str(date).strip(), str(time).strip().replace(":", "")
    day = dt.datetime.strptime(date[:8], "%Y%m%d")
    hours = int(time[0:2])
    minutes = int(time[2:4]) if len(time) >= 4 else 0
    seconds = float(time[4:]) if len(time) > 4 else 0.0
    return day + dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_dt(value: str) -> dt.datetime:
    """DICOM DT (YYYYMMDDHHMMSS.ffffff, an offset &ZZXX ignored)."""
    text = str(value).strip().split("+")[0].split("-")[0]
    return parse_datetime(text[:8], text[8:] or "00")


def scan_time(headers, where: str) -> tuple[dt.datetime, str]:
    """The decay reference time of a series (see the module's docstring) and which rule chose it."""
    first = headers[0]
    series = parse_datetime(_tag(first, "SeriesDate", "(0008,0021)", where),
                            _tag(first, "SeriesTime", "(0008,0031)", where))
    acquisitions = []
    for header in headers:
        date, time = header.get("AcquisitionDate") or first.get("SeriesDate"), header.get("AcquisitionTime")
        if date and time:
            acquisitions.append(parse_datetime(date, time))
    if acquisitions and series > min(acquisitions):
        return min(acquisitions), "earliest Acquisition Date/Time (the Series Time is later)"
    return series, "Series Date/Time"


def suv_conversion(headers, method: str = "bw", where: str = "") -> SUVConversion:
    """The factor turning this PET series' values into SUV (``headers``: its slices' datasets)."""
    if method not in METHODS:
        raise InputError(f"SUV method must be one of {', '.join(METHODS)}, got '{method}'")
    first = headers[0]
    units = str(_tag(first, "Units", "(0054,1001)", where)).strip().upper()
    if units == "GML":
        if method != "bw":
            raise InputError(f"the PET is stored as body-weight SUV (Units GML); it cannot be converted to {method}",
                             path=where)
        return SUVConversion(1.0, method, {"units": units, "note": "stored as SUVbw (Units GML)"})
    if units != "BQML":
        raise InputError(f"cannot compute SUV: Units (0054,1001) is {units}, expected BQML (activity concentration"
                         " in Bq/mL) or GML", path=where)
    decay = str(_tag(first, "DecayCorrection", "(0054,1102)", where)).strip().upper()
    if decay not in ("START", "ADMIN"):
        raise InputError(f"cannot compute SUV: Decay Correction (0054,1102) is {decay}; only START and ADMIN are "
                         "supported", path=where)
    weight = _number(first, "PatientWeight", "(0010,1030)", where)
    sequence = first.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise InputError("cannot compute SUV: Radiopharmaceutical Information Sequence (0054,0016) is missing",
                         path=where)
    drug = sequence[0]
    dose = _number(drug, "RadionuclideTotalDose", "(0018,1074)", where)
    half_life = _number(drug, "RadionuclideHalfLife", "(0018,1075)", where)
    if drug.get("RadiopharmaceuticalStartDateTime"):
        injection = parse_dt(drug.RadiopharmaceuticalStartDateTime)
    else:
        start = _tag(drug, "RadiopharmaceuticalStartTime", "(0018,1072)", where)
        injection = parse_datetime(_tag(first, "SeriesDate", "(0008,0021)", where), start)
    record = {"units": units, "decay_correction": decay, "weight_kg": weight, "injected_dose_bq": dose,
              "half_life_s": half_life, "injection_time": injection.isoformat()}
    if decay == "START":
        scanned, rule = scan_time(headers, where)
        elapsed = (scanned - injection).total_seconds()
        if elapsed < 0:
            raise InputError(f"cannot compute SUV: the scan ({scanned}) is before the injection ({injection}); check "
                             "Radiopharmaceutical Start Time (0018,1072) and Series Time (0008,0031)", path=where)
        record.update(scan_time=scanned.isoformat(), scan_time_rule=rule, decay_seconds=elapsed)
    else:
        elapsed = 0.0
        record.update(scan_time_rule="none (decay-corrected to the administration, ADMIN)")
    decayed = dose * 2.0 ** (-elapsed / half_life)
    mass_kg = weight
    if method != "bw":
        what = f" ({method})"
        height = _number(first, "PatientSize", "(0010,1020)", where, what)
        if height > 3:  # some systems write centimetres
            raise InputError(f"cannot compute SUV{what}: Patient's Size (0010,1020) is {height:g}; it must be in "
                             "metres", path=where)
        sex = str(_tag(first, "PatientSex", "(0010,0040)", where, what)).strip().upper()
        if sex not in ("M", "F"):
            raise InputError(f"cannot compute SUV{what}: Patient's Sex (0010,0040) is {sex!r}; lean body mass needs "
                             "M or F", path=where)
        mass_kg = lean_body_mass(weight, height, sex, method)
        record.update(height_m=height, sex=sex, lean_body_mass_kg=mass_kg)
    record.update(decayed_dose_bq=decayed)
    return SUVConversion(mass_kg * 1000.0 / decayed, method, record)


def series_suv_conversion(files, method: str = "bw") -> SUVConversion:
    """:func:`suv_conversion` of the PET series made of ``files`` (DICOM files of one series, e.g. the files a
    manifest's DICOM folder is read from); the error names the series' folder."""
    from pathlib import Path

    from .index import read_header

    files = [Path(f) for f in files]
    if not files:
        raise InputError("no DICOM files to compute SUV from")
    headers = []
    for path in files:
        header = read_header(path)
        if header is None:
            raise InputError("not a DICOM file", path=str(path))
        headers.append(header)
    modality = str(headers[0].get("Modality", "")).upper()
    if modality != "PT":
        raise InputError(f"SUV needs a PET series (Modality PT), this one is {modality or 'without a Modality'}",
                         path=str(files[0].parent))
    return suv_conversion(headers, method, where=f"PT series {headers[0].get('SeriesInstanceUID', '')}, "
                                                 f"{files[0].parent}")


def lean_body_mass(weight_kg: float, height_m: float, sex: str, method: str = "lbm") -> float:
    """Lean body mass in kg (Janmahasatian for ``lbm``, James for ``lbm-james``)."""
    if method == "lbm-james":
        ratio = weight_kg / (height_m * 100)
        return 1.10 * weight_kg - 128 * ratio ** 2 if sex == "M" else 1.07 * weight_kg - 148 * ratio ** 2
    bmi = weight_kg / height_m ** 2
    return 9270 * weight_kg / (6680 + 216 * bmi) if sex == "M" else 9270 * weight_kg / (8780 + 244 * bmi)
