"""The report's figures, drawn with Matplotlib's object-oriented API (``Figure``; no pyplot, no backend switch).

Each figure is saved as PNG and SVG in the report's ``figures`` folder; :func:`save` returns the PNG's bytes
for embedding in the HTML.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np

SMALL = 7


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(figure, folder: Path, stem: str, dpi: int = 110) -> bytes:
    """Write ``folder/stem.png`` and ``folder/stem.svg``; return the PNG bytes."""
    from ..atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    png = buffer.getvalue()
    with atomic_path(folder / f"{stem}.png") as tmp:
        tmp.write_bytes(png)
    with atomic_path(folder / f"{stem}.svg") as tmp:
        figure.savefig(tmp, format="svg")
    return png


def roc(curves: Mapping[str, tuple], title: str):
    """``{label: (fpr, tpr)}`` as ROC curves (labels carry the AUC and its DeLong CI)."""
    figure = _figure(5.2, 4.6)
    axes = figure.subplots()
    for label, (fpr, tpr) in curves.items():
        axes.plot(fpr, tpr, linewidth=1.4, label=label)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="sensitivity", title=title)
    axes.title.set_fontsize(9)
    axes.legend(fontsize=SMALL, loc="lower right")
    return figure


def calibration(curves: Mapping[str, tuple], title: str):
    """``{label: (mean predicted, observed fraction)}`` against the diagonal of perfect calibration."""
    figure = _figure(5.2, 4.6)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for label, (predicted, observed) in curves.items():
        axes.plot(predicted, observed, marker="o", linewidth=1.2, markersize=4, label=label)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed fraction positive",
             title=title)
    axes.title.set_fontsize(9)
    axes.legend(fontsize=SMALL, loc="upper left")
    return figure


def grid_heatmaps(results, value: str, title: str):
    """One selector x classifier heat map of ``value`` per feature set, side by side."""
    sets = list(dict.fromkeys(results["feature_set"]))
    first = results[results["feature_set"] == sets[0]]
    n_sel, n_clf = first["selector"].nunique(), first["classifier"].nunique()
    figure = _figure(max(3.2, (1.0 * n_clf + 1.6)) * len(sets) + 0.8, 0.55 * n_sel + 1.8)
    axes_list = np.atleast_1d(figure.subplots(1, len(sets), squeeze=False)[0])
    image = None
    for axes, name in zip(axes_list, sets):
        table = results[results["feature_set"] == name]
        grid = table.pivot(index="selector", columns="classifier", values=value)
        grid = grid.reindex(index=list(dict.fromkeys(table["selector"])),
                            columns=list(dict.fromkeys(table["classifier"])))
        values = grid.to_numpy(dtype=float)
        image = axes.imshow(values, cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
        axes.set_xticks(range(grid.shape[1]), grid.columns, fontsize=SMALL)
        axes.set_yticks(range(grid.shape[0]), grid.index, fontsize=SMALL)
        for (i, j), v in np.ndenumerate(values):
            axes.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=SMALL,
                      color="white" if np.isnan(v) or v < 0.75 else "black")
        axes.set_title(name, fontsize=8)
    figure.suptitle(title, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes_list), shrink=0.8)
    return figure


def feature_curves(curves, title: str):
    """0.632+ AUC (± SD) against the number of top-ranked features, one line per set's best cell."""
    figure = _figure(5.6, 4.0)
    axes = figure.subplots()
    for label, table in curves.groupby("model", sort=False):
        n, auc, sd = table["n_features"].to_numpy(), table["auc632plus"].to_numpy(), table["auc_sd"].to_numpy()
        line = axes.plot(n, auc, marker="o", markersize=3, linewidth=1.2, label=label)[0]
        axes.fill_between(n, auc - sd, auc + sd, color=line.get_color(), alpha=0.15, linewidth=0)
        chosen = int(table["forward_selected"].iloc[0])
        axes.axvline(chosen, color=line.get_color(), linestyle="--", linewidth=0.8)
    axes.set(xlabel="number of top-ranked features", ylabel="0.632+ bootstrap AUC", title=title)
    axes.title.set_fontsize(9)
    axes.legend(fontsize=SMALL, loc="lower right")
    return figure


def shapley_bars(values, title: str):
    """Mean |Shapley value| per model input, largest on top."""
    values = values.sort_values()
    figure = _figure(5.6, 0.3 * len(values) + 1.4)
    axes = figure.subplots()
    axes.barh(range(len(values)), values.to_numpy(), color="#4c72b0")
    axes.set_yticks(range(len(values)), [str(v)[:40] for v in values.index], fontsize=SMALL)
    axes.set(xlabel="mean |Shapley value| (model score)", title=title)
    axes.title.set_fontsize(9)
    return figure


def missingness(missing, title: str):
    """Patients x variables: missing (dark) or present."""
    figure = _figure(min(1.0 + 0.35 * missing.shape[1], 11), min(1.4 + 0.12 * missing.shape[0], 9))
    axes = figure.subplots()
    axes.imshow(missing.to_numpy(dtype=float), cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    axes.set_xticks(range(missing.shape[1]), [str(c) for c in missing.columns], rotation=60, ha="right",
                    fontsize=SMALL)
    step = max(1, missing.shape[0] // 30)
    axes.set_yticks(range(0, missing.shape[0], step), [str(i) for i in missing.index[::step]], fontsize=SMALL)
    axes.set_title(title, fontsize=9)
    return figure
