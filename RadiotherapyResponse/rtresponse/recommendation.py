"""Treatment recommendation from two residual-tumour models, and how to judge it (Table 3 of the NPC paper).

Two models predict, from the pre-treatment MR, whether tumour will remain after CCRT alone and
after induction chemotherapy plus CCRT (IC+CCRT). The aim is the lightest regimen that still
leaves no residual tumour:

=================  ===================  ==============
CCRT model         IC+CCRT model        recommendation
=================  ===================  ==============
non-residual       non-residual         CCRT
non-residual       residual             CCRT
residual           non-residual         IC+CCRT
residual           residual             IBT (individual-based, more intensive treatment)
=================  ===================  ==============

:func:`judge` compares the recommendation and the physician's choice with what happened to the
patient, who received one regimen only. The rules, read from the paper's text and its Table 3:

* The model can be right only if its prediction for the regimen the patient received matches
  the outcome. Otherwise the model is wrong, and the physician is right when the tumour cleared
  (undetermined when it did not: nothing shows another regimen would have done better).
* With that prediction right: recommending IBT leaves both undetermined (no patient received
  it); recommending the regimen the physician chose makes both right; recommending the other
  regimen makes the model right and the physician wrong (IC+CCRT where CCRT sufficed is
  over-treatment; CCRT that left tumour where IC+CCRT would have cleared it is under-treatment).

All 16 combinations are in ``docs/residual-tumour.md`` and in the tests; the 11 that occur in
the paper's 85 test patients reproduce its tallies (physicians 39/26/20, model 58/11/16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import InputError

CCRT = "CCRT"
IC_CCRT = "IC+CCRT"
IBT = "IBT"
REGIMENS = (CCRT, IC_CCRT)
CORRECT, WRONG, UNDETERMINED = "correct", "wrong", "undetermined"

_ALIASES = {"ccrt": CCRT, "ic+ccrt": IC_CCRT, "ic_ccrt": IC_CCRT, "ic-ccrt": IC_CCRT, "ic + ccrt": IC_CCRT,
            "icccrt": IC_CCRT}


def regimen_name(value) -> str:
    """``"CCRT"`` or ``"IC+CCRT"`` from the usual spellings (case and separators ignored)."""
    name = _ALIASES.get(str(value).strip().lower())
    if name is None:
        raise InputError(f"unknown regimen '{value}' (expected CCRT or IC+CCRT)")
    return name


def _flag(value, what: str) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "residual", "rt"):
            return True
        if text in ("0", "false", "no", "non-residual", "nrt"):
            return False
        raise InputError(f"{what} must be residual (1) or non-residual (0), got '{value}'")
    if value in (0, 1) or isinstance(value, bool):
        return bool(value)
    raise InputError(f"{what} must be residual (1) or non-residual (0), got {value!r}")


def recommend(ccrt_residual: bool, ic_ccrt_residual: bool) -> str:
    """The lightest regimen predicted to leave no residual tumour: "CCRT", "IC+CCRT" or "IBT"."""
    if not _flag(ccrt_residual, "the CCRT prediction"):
        return CCRT
    if not _flag(ic_ccrt_residual, "the IC+CCRT prediction"):
        return IC_CCRT
    return IBT


def reasoning(ccrt_residual: bool, ic_ccrt_residual: bool) -> str:
    """The recommendation in plain words, for the module and reports."""
    ccrt, ic = _flag(ccrt_residual, "the CCRT prediction"), _flag(ic_ccrt_residual, "the IC+CCRT prediction")
    said = (f"The CCRT model predicts {'residual' if ccrt else 'no residual'} tumour; "
            f"the IC+CCRT model predicts {'residual' if ic else 'no residual'} tumour. ")
    if not ccrt:
        return said + "CCRT alone is predicted to clear the tumour, so induction chemotherapy can be spared: CCRT."
    if not ic:
        return said + "Only the addition of induction chemotherapy is predicted to clear the tumour: IC+CCRT."
    return said + ("Neither regimen is predicted to clear the tumour: an individual-based, more intensive "
                   "treatment (IBT) should be considered.")


def judge(ccrt_residual_pred, ic_ccrt_residual_pred, physician_regimen, actual_residual) -> tuple[str, str]:
    """``(model_verdict, physician_verdict)``, each "correct", "wrong" or "undetermined"."""
    predictions = {CCRT: _flag(ccrt_residual_pred, "the CCRT prediction"),
                   IC_CCRT: _flag(ic_ccrt_residual_pred, "the IC+CCRT prediction")}
    received = regimen_name(physician_regimen)
    actual = _flag(actual_residual, "the actual outcome")
    if predictions[received] != actual:  # the model was wrong about what it could be checked on
        return WRONG, (CORRECT if not actual else UNDETERMINED)
    recommended = recommend(predictions[CCRT], predictions[IC_CCRT])
    if recommended == IBT:
        return UNDETERMINED, UNDETERMINED
    if recommended == received:
        return CORRECT, CORRECT
    return CORRECT, WRONG


@dataclass(frozen=True)
class Summary:
    model: dict          # {"correct": n, "wrong": n, "undetermined": n}
    physician: dict
    model_rate: float    # correct / (correct + wrong)
    physician_rate: float
    chi2: float          # Pearson chi-square on the 2 x 2 table correct/wrong x model/physician
    p_value: float

    def as_rows(self) -> list[dict]:
        return [{"decision": who, **counts, "correct_rate": rate}
                for who, counts, rate in (("model", self.model, self.model_rate),
                                          ("physician", self.physician, self.physician_rate))]


def summarize(cases: Iterable[Sequence], yates: bool = False) -> Summary:
    """Tally :func:`judge` over ``cases`` (each the 4-tuple it takes) and compare the correct rates.

    The paper's test (SPSS Pearson chi-square) has no continuity correction; ``yates=True`` adds it.
    """
    from scipy.stats import chi2_contingency

    tallies = {"model": dict.fromkeys((CORRECT, WRONG, UNDETERMINED), 0),
               "physician": dict.fromkeys((CORRECT, WRONG, UNDETERMINED), 0)}
    count = 0
    for case in cases:
        if len(case) != 4:
            raise InputError(f"each case needs 4 values (CCRT prediction, IC+CCRT prediction, regimen, outcome), "
                             f"got {len(case)}")
        model, physician = judge(*case)
        tallies["model"][model] += 1
        tallies["physician"][physician] += 1
        count += 1
    if count == 0:
        raise InputError("no cases to summarize")

    def rate(t):
        judged = t[CORRECT] + t[WRONG]
        return t[CORRECT] / judged if judged else float("nan")

    table = [[tallies[w][CORRECT], tallies[w][WRONG]] for w in ("model", "physician")]
    if min(map(sum, table)) == 0 or min(sum(column) for column in zip(*table)) == 0:
        statistic, p = float("nan"), float("nan")
    else:
        statistic, p = chi2_contingency(table, correction=yates)[:2]
    return Summary(tallies["model"], tallies["physician"], rate(tallies["model"]), rate(tallies["physician"]),
                   float(statistic), float(p))


def situations(cases: Iterable[Sequence]) -> "pd.DataFrame":
    """The paper's Table 3 layout: one row per distinct situation with its count and verdicts."""
    import pandas as pd

    rows = {}
    for ccrt, ic, regimen, actual in cases:
        ccrt, ic, actual = _flag(ccrt, "the CCRT prediction"), _flag(ic, "the IC+CCRT prediction"), \
            _flag(actual, "the actual outcome")
        regimen = regimen_name(regimen)
        key = (ccrt, ic, regimen, actual)
        rows[key] = rows.get(key, 0) + 1

    def word(residual):
        return "residual" if residual else "non-residual"

    records = []
    # physicians' IC+CCRT first, then CCRT, as in the paper's table
    for (ccrt, ic, regimen, actual), count in sorted(rows.items(), key=lambda item: (item[0][2] != IC_CCRT,
                                                                                      item[0][3], item[0][:2])):
        recommended = recommend(ccrt, ic)
        model, physician = judge(ccrt, ic, regimen, actual)
        predicted_effect = "residual" if recommended == IBT else "non-residual"
        records.append({"ccrt_model": word(ccrt), "ic_ccrt_model": word(ic),
                        "recommendation": f"{recommended} ({predicted_effect})",
                        "physician_decision": f"{regimen} ({word(actual)})", "cases": count,
                        "model_verdict": model, "physician_verdict": physician})
    table = pd.DataFrame(records, columns=["ccrt_model", "ic_ccrt_model", "recommendation", "physician_decision",
                                           "cases", "model_verdict", "physician_verdict"])
    table.index = pd.RangeIndex(1, len(table) + 1, name="situation")
    return table
