"""Grad-CAM on the max-area slice (MONAI's GradCAM), mapped back onto the CT's grid: of one image
(:func:`gradcam`) or of every patient of a cohort with one network (:func:`gradcam_cohort`, the
``rtresponse gradcam`` command).

The target is one output unit of the network, or a linear combination of its outputs — the
score a downstream model computes from selected deep features — so the map shows where the
network looks for *that* prediction. Beyond MATLAB's Grad-CAM (used in the paper), which
explains one class.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

from ...errors import InputError
from ...imaging import SliceCrop, tumour_slices
from ...settings import resolve_device
from .catalogue import PAPER_DEFAULT, model_spec
from .extraction import N_FEATURES, _check_options, check_columns, feature_names, patient_slices
from .networks import build, to_input

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import SimpleITK as sitk

    from ...cohort import Cohort

Target = int | Sequence[float] | Mapping[str, float] | None


def target_weights(model: str, target: Target, statistics: "pd.DataFrame | None" = None) -> np.ndarray | None:
    """(1000,) weights of the score to explain, or None for the strongest output unit.

    ``target``: a unit index; 1000 weights; or {feature name: coefficient} of a downstream
    model. With the z-score ``statistics`` of the features, coefficients of z-scored features
    are turned into coefficients of the raw outputs (divided by the feature's std; the means
    only shift the score, which Grad-CAM's gradients ignore).
    """
    if target is None:
        return None
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < N_FEATURES:
            raise InputError(f"output unit must be in 0..{N_FEATURES - 1}, got {target}")
        weights = np.zeros(N_FEATURES)
        weights[int(target)] = 1.0
        return weights
    names = feature_names(model)
    if isinstance(target, Mapping):
        unknown = [name for name in target if name not in names]
        if unknown:
            raise InputError(f"'{unknown[0]}' is not a feature of {model} (expected names like {names[0]})")
        weights = np.array([float(target.get(name, 0.0)) for name in names])
    else:
        weights = np.asarray(target, dtype=float).ravel()
        if weights.size != N_FEATURES:
            raise InputError(f"target weights must have {N_FEATURES} values, got {weights.size}")
    if statistics is not None:
        weights = weights / statistics.loc["std", names].to_numpy(dtype=float)
    if not np.any(weights):
        raise InputError("target weights are all zero")
    return weights


def _score_network(network, weights: np.ndarray | None):
    import torch

    class Score(torch.nn.Module):
        """The network's outputs, or their weighted sum as a single output."""

        def __init__(self):
            super().__init__()
            self.net = network
            self.weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)

        def forward(self, x):
            out = self.net(x)
            return out if self.weights is None else out @ self.weights.to(out.device)[:, None]

    return Score()


def min_max_per_map(maps):
    """Each map scaled to [0, 1], largest activation 1 (MONAI's default normaliser maps it to 0); flat maps give 0."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    span = (flat.max(dim=1).values.view_as(low) - low)
    return (maps - low) / span.where(span > 0, span.new_ones(()))


class Explainer:
    """One network and its MONAI GradCAM, reused for every slice: ``explainer(crop)`` -> (size, size) in [0, 1].

    The network is built fresh (MONAI leaves its hooks on it), once: a cohort pays for it once, not per patient.
    """

    def __init__(self, model: str = PAPER_DEFAULT, weights: str | os.PathLike | None = "imagenet",
                 target: Target = None, statistics=None, device: str = "auto", seed: int = 0, weights_folder=None):
        from monai.visualize import GradCAM

        self.spec = model_spec(model)
        self.device = resolve_device(device)
        self.combination = target_weights(self.spec.name, target, statistics)
        network = build(self.spec, weights, seed, weights_folder).to(self.device)
        self.cam = GradCAM(nn_module=_score_network(network, self.combination),
                           target_layers=f"net.{self.spec.cam_layer}", postprocessing=min_max_per_map)

    def __call__(self, crop: SliceCrop) -> np.ndarray:
        import torch.nn.functional as F

        x = to_input([crop.pixels], self.spec, self.device).requires_grad_(True)
        heat = self.cam(x, class_idx=None if self.combination is None else 0)  # (1, 1, S, S) in [0, 1]
        heat = F.interpolate(heat.detach().float(), size=crop.pixels.shape, mode="bilinear", align_corners=False)
        return np.clip(heat[0, 0].cpu().numpy(), 0.0, 1.0).astype(np.float32)


def gradcam_crop(image, mask, model: str = PAPER_DEFAULT, weights: str | os.PathLike | None = "imagenet",
                 target: Target = None, statistics=None, device: str = "auto", size_mm: float = 100.0,
                 level: float = 50.0, width: float = 350.0, context: str = "mask", seed: int = 0,
                 weights_folder=None) -> tuple[np.ndarray, SliceCrop]:
    """Grad-CAM (size, size) in [0, 1] on the preprocessed max-area slice, and that slice."""
    crop = tumour_slices(image, mask, size_mm, level, width, context)[0]
    return Explainer(model, weights, target, statistics, device, seed, weights_folder)(crop), crop


def crop_map_to_image(values: np.ndarray, crop: SliceCrop, reference: "sitk.Image") -> "sitk.Image":
    """A (size, size) map of ``crop`` as a float32 image on ``reference``'s grid (0 elsewhere).

    The map fills the reference slice that holds the crop's plane: it is given the reference's
    slice thickness so the slice nearest the crop, and only it, samples it.
    """
    import SimpleITK as sitk

    plane = sitk.GetImageFromArray(np.asarray(values, dtype=np.float32)[None])
    plane.SetOrigin(crop.corner_point())
    plane.SetSpacing((crop.grid_spacing_mm, crop.grid_spacing_mm, reference.GetSpacing()[2]))
    plane.SetDirection(crop.grid_direction)
    return sitk.Resample(plane, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def gradcam(image, mask, model: str = PAPER_DEFAULT, weights: str | os.PathLike | None = "imagenet",
            target: Target = None, statistics=None, device: str = "auto", **options) -> "sitk.Image":
    """Grad-CAM of the max-area slice as a float32 volume with ``image``'s geometry (0 off that slice).

    ``target``: None (the strongest output unit), a unit index, 1000 weights, or
    {feature name: coefficient} of a downstream model (with the z-score ``statistics`` when
    its features were z-scored). ``options`` are those of :func:`gradcam_crop`.
    """
    import SimpleITK as sitk

    values, crop = gradcam_crop(image, mask, model, weights, target, statistics, device, **options)
    reference = sitk.GetImageFromArray(np.asarray(image, dtype=np.float32)) if isinstance(image, np.ndarray) else image
    return crop_map_to_image(values, crop, reference)


_EXPLAINERS: dict = {}  # this process's explainer, kept for its next task: {digest of its arguments: Explainer}


def cached_explainer(model, weights, target, statistics, device: str, seed: int, weights_folder) -> Explainer:
    """An :class:`Explainer` built once per process (a Dask worker or this process builds it for its first patient and
    reuses it; the network is never sent with a task)."""
    import hashlib
    import pickle

    key = hashlib.sha256(pickle.dumps((model_spec(model).name, None if weights is None else str(weights), int(seed),
                                       None if weights_folder is None else str(weights_folder), str(device), target,
                                       statistics))).hexdigest()
    if key not in _EXPLAINERS:
        _EXPLAINERS.clear()
        _EXPLAINERS[key] = Explainer(model, weights, target, statistics, device, seed, weights_folder)
    return _EXPLAINERS[key]


def _gradcam_task(pid: str, *, cohort, image, mask, options, model, weights, target, statistics, device, seed,
                  weights_folder) -> tuple:
    """One task: (the patient's max-area SliceCrop and its (size, size) map, "ok"), or (None, None, why not). The
    passes run on a fixed torch thread count (:func:`rtresponse.settings.task_torch_threads`): the same map wherever
    it runs."""
    from ...settings import task_torch_threads

    try:
        _, crops = patient_slices(cohort, pid, image, mask, options)
    except InputError as error:
        return None, None, str(error)
    explain = cached_explainer(model, weights, target, statistics, device, seed, weights_folder)
    with task_torch_threads():
        return crops[0], explain(crops[0]), "ok"


def gradcam_cohort(cohort: "Cohort", image: str = "CT", mask: str = "GTVp", model: str = PAPER_DEFAULT,
                   weights: str | os.PathLike | None = "imagenet", target: Target = None, statistics=None,
                   device: str = "auto", size_mm: float = 100.0, level: float = 50.0, width: float = 350.0,
                   context: str = "mask", seed: int = 0, weights_folder=None, patients: Sequence[str] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   on_map: Callable[[str, "sitk.Image", SliceCrop, np.ndarray], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None, execution=None,
                   ) -> Iterator[tuple[str, "sitk.Image | None", str]]:
    """(patient id, Grad-CAM volume on the patient's image grid or None, status) for each patient of the cohort
    (or of ``patients``): a patient whose image or mask fails gets None and the reason ("ok" otherwise), the others
    go on. The network is built once, before any patient (missing weights fail there). ``progress(done, total)``
    before the first patient and as each patient's map is computed. ``on_map(patient id, image, slice, map)``
    is called before a patient's map is yielded with what the network saw (the preprocessed :class:`SliceCrop`) and
    its (size, size) map in [0, 1] (previews are drawn from them).

    Each patient's map is one task, on one torch thread, where ``execution`` (:mod:`rtresponse.execution`: an
    ``Execution``, a dask ``Client`` or a scheduler setting; default this process) says; the explainer is built
    once per worker. Only the slice and its map come back; the volumes are made here, one at a time, as the
    patients are yielded (after every map is computed). The maps are the same wherever they are computed."""
    from ...execution import resolve

    check_columns(cohort, image, mask)
    _check_options(size_mm, level, width, context, 1)
    ids = cohort.patient_ids
    if patients:
        unknown = [pid for pid in patients if pid not in ids]
        if unknown:
            raise InputError(f"no patient '{unknown[0]}' in the manifest", path=str(cohort.path))
        chosen = set(patients)
        ids = [pid for pid in ids if pid in chosen]
    if progress:
        progress(0, len(ids))  # before the network is built (seconds with large networks)
    device = resolve_device(device)
    cached_explainer(model, weights, target, statistics, device, seed, weights_folder)  # missing weights fail here
    options = dict(size_mm=size_mm, level=level, width=width, context=context)
    runner, owned = resolve(execution, 1)
    try:
        found = runner.map(_gradcam_task, [(pid,) for pid in ids],
                           shared=dict(cohort=cohort, image=image, mask=mask, options=options, model=model,
                                       weights=weights, target=target, statistics=statistics, device=device,
                                       seed=seed, weights_folder=weights_folder),
                           progress=progress, should_cancel=should_cancel, cancelled="Grad-CAM cancelled",
                           on_lost=lambda i, error: (None, None, f"worker lost while computing the map ({error})"))
    finally:
        if owned:
            runner.close()
    for pid, (crop, values, status) in zip(ids, found):
        heat = None
        if crop is not None:
            ct = cohort.read_image(pid, image)
            heat = crop_map_to_image(values, crop, ct)
            if on_map is not None:
                on_map(pid, ct, crop, values)
        yield pid, heat, status
