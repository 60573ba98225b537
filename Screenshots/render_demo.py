"""Render the extension's screenshot from the demo scene: ``rtresponse demo`` data drawn with matplotlib.

Not a Slicer screen capture, and labelled so in the image: the left panel is the first patient's planning CT with
its PET and contours as the scene holds them, the right panels are the scene's response-model grid (selector x
classifier, 0.632+ bootstrap AUC) and ROC table. Run from the repository root (about a minute, most of it the demo):

    .venv/bin/python Screenshots/render_demo.py                       # runs the demo in a temporary folder
    .venv/bin/python Screenshots/render_demo.py --demo demo           # or reuses `rtresponse demo --out demo`

Needs the [mrml,radiomics,modelling] extras (the demo's analyses, matplotlib).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "RadiotherapyResponse-demo.png"
LABEL = "Rendered from the demo data with rtresponse (not a Slicer screen capture)"


def scene_table(mrb: Path, name: str):
    """A table node's TSV from the scene file (``name`` is the start of the node's file name)."""
    import pandas as pd

    with zipfile.ZipFile(mrb) as archive:
        found = [n for n in archive.namelist() if Path(n).name.startswith(name) and n.endswith(".tsv")
                 and not n.endswith(".schema.tsv")]
        if len(found) != 1:
            raise SystemExit(f"{mrb}: expected one table '{name}', found {found}")
        return pd.read_csv(io.BytesIO(archive.read(found[0])), sep="\t")


def render(demo: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    from rtresponse.cohort import load_manifest
    from rtresponse.imaging.slices import window

    cohort = load_manifest(demo / "cohort" / "manifest.csv")
    patient = cohort.patient_ids[0]
    ct = cohort.read_image(patient, "CT")
    pet = sitk.Resample(cohort.read_image(patient, "PET"), ct, sitk.Transform(), sitk.sitkLinear, 0.0)
    masks = {name: sitk.GetArrayFromImage(cohort.read_mask(patient, name, image="CT", reference=ct))
             for name in ("GTVp", "GTVn", "relapse")}
    k = int(np.argmax(masks["GTVp"].sum(axis=(1, 2))))  # the axial slice with the largest GTVp
    ct_slice = window(sitk.GetArrayFromImage(ct)[k], level=50.0, width=350.0)
    pet_slice = sitk.GetArrayFromImage(pet)[k]
    aspect = ct.GetSpacing()[1] / ct.GetSpacing()[0]  # pixels drawn in mm proportions, as the slice view shows

    grid = scene_table(demo / "scene.mrb", "response model grid")
    heat = grid.pivot(index="selector", columns="classifier", values="auc632plus")
    best = grid.loc[grid["auc632plus"].idxmax()]
    roc = scene_table(demo / "scene.mrb", "response ROC")

    plt.rcParams.update({"font.size": 10})
    figure = plt.figure(figsize=(12.8, 7.2), dpi=100, facecolor="#2b2b2b")
    layout = figure.add_gridspec(2, 2, width_ratios=(1.35, 1), left=0.03, right=0.97, top=0.88, bottom=0.09,
                                 wspace=0.18, hspace=0.42)
    text = {"color": "#e8e8e8"}

    view = figure.add_subplot(layout[:, 0])
    view.imshow(ct_slice, cmap="gray", aspect=aspect, interpolation="bilinear")
    shown = np.ma.masked_less(pet_slice, 0.4 * float(pet_slice.max() or 1.0))
    view.imshow(shown, cmap="hot", alpha=0.45, aspect=aspect, interpolation="bilinear")
    for (name, colour) in (("GTVp", "#e31a1c"), ("GTVn", "#ff9f1c"), ("relapse", "#33d17a")):
        if masks[name][k].any():  # row 0 at the top, as imshow draws it
            view.contour(masks[name][k], levels=[0.5], colors=[colour], linewidths=1.8)
            view.plot([], [], color=colour, linewidth=2, label=name)
    view.legend(loc="lower right", facecolor="#202020", edgecolor="#505050", labelcolor="#e8e8e8")
    view.set_title(f"Patient {patient}: planning CT (W 350 / L 50) with PET and contours, axial slice {k}",
                   fontsize=10, **text)
    view.set_xticks([])
    view.set_yticks([])

    heatmap = figure.add_subplot(layout[0, 1])
    image = heatmap.imshow(heat.to_numpy(), cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    heatmap.set_xticks(range(heat.shape[1]), heat.columns, **text)
    heatmap.set_yticks(range(heat.shape[0]), heat.index, **text)
    for (row, column), value in np.ndenumerate(heat.to_numpy()):
        heatmap.text(column, row, f"{value:.2f}", ha="center", va="center", color="black")
    heatmap.set_title("Response model grid: 0.632+ bootstrap AUC", fontsize=10, **text)
    bar = figure.colorbar(image, ax=heatmap, fraction=0.05)
    bar.ax.tick_params(colors="#e8e8e8")

    curve = figure.add_subplot(layout[1, 1])
    x, y = roc.columns[0], roc.columns[1]
    curve.plot(roc[x], roc[y], drawstyle="steps-post", color="#4fa3ff", linewidth=2,
               label=f"{best['feature_set']}: {best['selector']} + {best['classifier']}")
    curve.plot([0, 1], [0, 1], linestyle=":", color="#9a9a9a")
    curve.set_xlabel("1 - specificity", **text)
    curve.set_ylabel("sensitivity", **text)
    curve.set_title("ROC of the best model (apparent)", fontsize=10, **text)
    curve.legend(loc="lower right", fontsize=8)
    for axes in (heatmap, curve):
        axes.tick_params(colors="#e8e8e8")
        axes.set_facecolor("#1e1e1e")

    figure.suptitle("RadiotherapyResponse: synthetic head & neck demo cohort (rtresponse demo)", fontsize=14,
                    fontweight="bold", **text)
    figure.text(0.5, 0.025, LABEL, ha="center", fontsize=11, color="#ffd24d")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, facecolor=figure.get_facecolor())
    plt.close(figure)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="an `rtresponse demo` output folder (default: run the demo)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT.name} beside this script)")
    args = parser.parse_args(argv)
    if args.demo:
        print(render(args.demo, args.out))
        return
    from rtresponse import demo

    with tempfile.TemporaryDirectory() as folder:
        demo.run(folder)
        print(render(Path(folder), args.out))


if __name__ == "__main__":
    main()
