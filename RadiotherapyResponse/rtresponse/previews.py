"""PNG previews of Grad-CAM maps (``rtresponse gradcam``): the max-area slice as the network saw it (cropped,
windowed, masked with ``--context mask``), the map over it as a colour map with alpha, the GTV's contour, and a title
naming the patient, the network and whether its weights are real or random.

Drawn with Matplotlib's object-oriented API (a :class:`matplotlib.figure.Figure` on its own Agg canvas): no pyplot,
no global backend, safe in threads and inside 3D Slicer. Matplotlib is imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk
    from matplotlib.figure import Figure

    from .imaging import SliceCrop

MAP_COLOURS = "jet"  # Grad-CAM's usual colour map: cold (0) to hot (1)
MAP_ALPHA = 0.45  # the slice shows through the map
FAINT = 0.02  # map values below this are not drawn (the slice is seen as it is there)
CONTOUR_COLOUR = "lime"


def mask_on_crop(mask: "sitk.Image", crop: "SliceCrop") -> np.ndarray:
    """(size, size) bool: the mask on the plane of ``crop`` (nearest neighbour; the pixels' own grid)."""
    import SimpleITK as sitk

    rows, columns = crop.pixels.shape
    plane = sitk.Image(int(columns), int(rows), 1, sitk.sitkUInt8)
    plane.SetOrigin(crop.corner_point())
    plane.SetSpacing((crop.grid_spacing_mm, crop.grid_spacing_mm, crop.grid_spacing_mm))
    plane.SetDirection(crop.grid_direction)
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    on_plane = sitk.Resample(binary, plane, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(on_plane)[0] != 0


def weights_text(weights_label: str) -> str:
    """The title's words for the weights: RANDOM ones loudly (testing only), real ones with their file."""
    if weights_label.startswith("random"):
        return f"RANDOM weights ({weights_label.partition('(')[2].rstrip(')') or 'seeded'}): for testing only"
    return f"real weights: {weights_label}"


def gradcam_figure(pixels: np.ndarray, heat: np.ndarray, inside: np.ndarray | None, spacing_mm: float,
                   patient: str, network: str, weights_label: str, detail: str = "") -> "Figure":
    """The preview as a Figure (on an Agg canvas): ``pixels`` (size, size) in [0, 1] as gray, ``heat`` (size, size)
    in [0, 1] over it, the contour of ``inside`` (the GTV), the title; ``detail`` a line under the image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pixels, heat = np.asarray(pixels, dtype=float), np.asarray(heat, dtype=float)
    rows, columns = pixels.shape
    width, height = columns * spacing_mm, rows * spacing_mm
    extent = (0.0, width, height, 0.0)  # mm from the crop's corner; rows downwards, as the network saw them
    figure = Figure(figsize=(5.6, 5.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(pixels, cmap="gray", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest")
    shown = axes.imshow(np.ma.masked_less(heat, FAINT), cmap=MAP_COLOURS, vmin=0.0, vmax=1.0, alpha=MAP_ALPHA,
                        extent=extent, interpolation="bilinear")
    if inside is not None and np.any(inside):
        x = (np.arange(columns) + 0.5) * spacing_mm
        y = (np.arange(rows) + 0.5) * spacing_mm
        axes.contour(x, y, np.asarray(inside, dtype=float), levels=[0.5], colors=CONTOUR_COLOUR, linewidths=1.5)
    axes.set_xlabel("mm" + (f"\n{detail}" if detail else ""))
    axes.set_ylabel("mm")
    axes.set_title(f"{patient}: Grad-CAM of {network}\n{weights_text(weights_label)}", fontsize=10,
                   color="firebrick" if weights_label.startswith("random") else "black")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="Grad-CAM (0-1)")
    return figure


def write_gradcam_preview(path: str | os.PathLike, crop: "SliceCrop", heat: np.ndarray, mask: "sitk.Image | None",
                          patient: str, network: str, weights_label: str, detail: str = "") -> Path:
    """``path`` (PNG, written atomically): the preview of one patient's map (see :func:`gradcam_figure`)."""
    from .atomic import atomic_path

    inside = mask_on_crop(mask, crop) if mask is not None else None
    figure = gradcam_figure(crop.pixels, heat, inside, crop.grid_spacing_mm, patient, network, weights_label, detail)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
