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


def loss_curves(history, x: str, series: Mapping[str, str], group: str | None, title: str, ylabel: str):
    """Training curves: ``series`` ({column: label}) against ``x``, one colour per ``group`` (model, regimen, run);
    the kept epoch (column ``kept``) marked."""
    figure = _figure(5.6, 4.0)
    axes = figure.subplots()
    groups = history.groupby(group, sort=False) if group else [("", history)]
    styles = ("-", "--", ":", "-.")
    for (name, table), colour in zip(groups, ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")):
        for (column, label), style in zip(series.items(), styles):
            if column in table and table[column].notna().any():
                axes.plot(table[x], table[column], style, color=colour, linewidth=1.2, markersize=3,
                          marker="o" if len(table) < 30 else None, label=f"{name} {label}".strip())
        if "kept" in table and table["kept"].any():
            axes.axvline(float(table.loc[table["kept"].astype(bool), x].iloc[0]), color=colour, linewidth=0.8,
                         linestyle=":")
    axes.set(xlabel=x, ylabel=ylabel, title=title)
    axes.title.set_fontsize(9)
    axes.legend(fontsize=SMALL)
    return figure


def method_boxplots(cases, columns: Mapping[str, str], title: str):
    """One box plot per metric (``columns``: {column: axis label}) of each method's per-patient values, the
    patients' points over the boxes."""
    methods = list(dict.fromkeys(cases["method"]))
    figure = _figure(2.6 * len(columns) + 0.6, 3.8)
    axes_list = np.atleast_1d(figure.subplots(1, len(columns), squeeze=False)[0])
    rng = np.random.default_rng(0)
    for axes, (column, label) in zip(axes_list, columns.items()):
        values = [cases.loc[cases["method"] == m, column].to_numpy(float) for m in methods]
        axes.boxplot(values, showfliers=False)
        for i, v in enumerate(values, start=1):
            axes.plot(i + rng.uniform(-0.12, 0.12, len(v)), v, "o", color="black", markersize=3, alpha=0.6)
        axes.set_xticks(range(1, len(methods) + 1), methods, rotation=20, fontsize=SMALL)
        axes.set_ylabel(label, fontsize=8)
    figure.suptitle(title, fontsize=9)
    return figure


def origin_counts(summary, title: str):
    """Points of origin of the relapses included by each method's prediction, of all points."""
    figure = _figure(4.6, 3.4)
    axes = figure.subplots()
    methods = [str(m) for m in summary.index]
    included, total = summary["origins_included"].to_numpy(int), summary["origins_total"].to_numpy(int)
    axes.bar(methods, total, color="#dddddd", label="points of origin")
    axes.bar(methods, included, color="#4c72b0", label="inside the prediction")
    for i, (a, b) in enumerate(zip(included, total)):
        axes.text(i, a, f"{a}/{b}", ha="center", va="bottom", fontsize=SMALL)
    axes.set(ylabel="points of origin", title=title)
    axes.title.set_fontsize(9)
    axes.tick_params(axis="x", labelsize=SMALL)
    axes.legend(fontsize=SMALL)
    return figure


def gradcam_examples(examples, title: str):
    """``[(label, slice pixels, Grad-CAM map in [0, 1])]``: the preprocessed max-area CT slice, the map over it."""
    figure = _figure(2.8 * len(examples) + 0.4, 3.2)
    axes_list = np.atleast_1d(figure.subplots(1, len(examples), squeeze=False)[0])
    image = None
    for axes, (label, pixels, heat) in zip(axes_list, examples):
        axes.imshow(pixels, cmap="gray")
        image = axes.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        axes.set_title(label, fontsize=8)
        axes.set_axis_off()
    figure.suptitle(title, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes_list), shrink=0.8, label="Grad-CAM")
    return figure
