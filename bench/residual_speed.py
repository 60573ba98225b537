"""Per-patient inference time of the residual-tumour pipeline for the NPC paper's four networks.

One patient = tumour segmentation of every axial slice (DeepLabv3, the paper's choice; it does not
depend on the classifier, so it is timed once per device) + the rectangular crops + the CCRT and
IC+CCRT classifiers + Grad-CAM of both on every tumour slice: what
``rtresponse.residual.predict_patient`` does (run once at the end of each device as a check).
Times are medians of ``--repeats`` runs after a warm-up. The synthetic MR is the paper's format: 512 x 512
pixels of 1.25 mm, 48 axial slices of 5 mm, the tumour on 8 of them (the paper: 3871 images of
424 patients). Each network runs at its paper input size (299 px Xception / Inception-ResNet-v2,
224 px ResNet-50 / EfficientNet-B0). Random weights by default (speed does not depend on them;
ImageNet files may be missing); ``--weights imagenet`` uses the local files.

Usage: python bench/residual_speed.py [--device cpu cuda] [--networks ...] [--repeats N] [--threads N] [--amp]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.residual import (PAPER_NETWORKS, Classifier, ClassifierConfig, Segmenter,  # noqa: E402
                                 SegmenterConfig, make_classifier, make_segmenter, predict_patient)
from rtresponse.residual.classification import patient_probabilities, predict_slices  # noqa: E402
from rtresponse.residual.gradcam import gradcam_image  # noqa: E402
from rtresponse.residual.segmentation import segment_image  # noqa: E402
from rtresponse.residual.slices import rectangular_crops  # noqa: E402


def synthetic_patient(size: int = 512, slices: int = 48, tumour_slices: int = 8, seed: int = 0):
    """A T1-like MR volume (body, tumour with texture) and its tumour mask, 1.25 x 1.25 x 5 mm."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:slices, :size, :size]
    body = ((x - size / 2) / (0.4 * size)) ** 2 + ((y - size / 2) / (0.35 * size)) ** 2 <= 1
    body = np.broadcast_to(body, (slices, size, size))
    centre = slices // 2
    tumour = (((x - 0.45 * size) / 24) ** 2 + ((y - 0.4 * size) / 20) ** 2
              + ((z - centre) / (tumour_slices / 2)) ** 2) <= 1
    mr = np.where(body, 420.0, 5.0) + rng.normal(0, 15, (slices, size, size))
    mr[tumour] = 360 + 40 * rng.standard_normal(int(tumour.sum()))
    image = sitk.GetImageFromArray(mr.astype(np.float32))
    image.SetSpacing((1.25, 1.25, 5.0))
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _median_seconds(step, device: str, repeats: int) -> float:
    """Median seconds of ``step()`` over ``repeats`` runs after one warm-up (cuDNN autotuning, allocations)."""
    step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_classifiers(image, mask, ccrt, ic, device: str, repeats: int) -> dict:
    """Seconds per patient: crops + both classifiers, and Grad-CAM of both on every tumour slice."""
    samples = rectangular_crops(image, mask, "bench", **ccrt.config.crop_options())

    def classify():
        crops = rectangular_crops(image, mask, "bench", **ccrt.config.crop_options())
        for model in (ccrt, ic):
            patient_probabilities(crops, predict_slices(model, crops, device))

    def explain():
        for model in (ccrt, ic):
            gradcam_image(model, samples, image, device)

    return {"classifiers": _median_seconds(classify, device, repeats),
            "gradcam": _median_seconds(explain, device, repeats)}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--networks", nargs="+", default=list(PAPER_NETWORKS))
    parser.add_argument("--weights", choices=("random", "imagenet"), default="random")
    parser.add_argument("--segmenter", choices=("deeplabv3", "unet"), default="deeplabv3")
    parser.add_argument("--segmenter-size", type=int, default=256, help="slices resized to this square (default 256)")
    parser.add_argument("--size", type=int, default=512, help="MR matrix (default 512, the paper's)")
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = None if args.weights == "random" else "imagenet"
    image, mask = synthetic_patient(args.size, args.slices)
    seg_config = SegmenterConfig(architecture=args.segmenter, input_size=args.segmenter_size,
                                 backbone_weights=weights if args.segmenter == "deeplabv3" else None, amp=args.amp)
    segmenter_net = make_segmenter(args.segmenter, seg_config.backbone_weights)
    import SimpleITK as sitk

    tumour_slices = int(sitk.GetArrayViewFromImage(mask).any(axis=(1, 2)).sum())
    print(f"torch {torch.__version__}; patient {args.size} x {args.size} x {args.slices} voxels, {tumour_slices} "
          f"tumour slices; segmenter {args.segmenter} at {args.segmenter_size} px; weights {args.weights}; "
          f"amp {'on' if args.amp else 'off'}")
    print(f"{'device':<34}{'network':<21}{'px':>5}{'segment s':>11}{'classify s':>12}{'Grad-CAM s':>12}"
          f"{'total s':>10}")
    for device in args.device:
        where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        segmenter = Segmenter(segmenter_net.to(device).eval(), seg_config)
        segmentation = _median_seconds(lambda: segment_image(segmenter, image, device), device, args.repeats)
        for name in args.networks:
            models = []
            for regimen in ("CCRT", "IC+CCRT"):
                config = ClassifierConfig(network=name, weights=weights, regimen=regimen, amp=args.amp)
                models.append(Classifier(make_classifier(name, weights).to(device).eval(), config))
            timing = time_classifiers(image, mask, models[0], models[1], device, args.repeats)
            total = segmentation + timing["classifiers"] + timing["gradcam"]
            print(f"{where:<34}{name:<21}{models[0].config.size:>5}{segmentation:>11.2f}"
                  f"{timing['classifiers']:>12.2f}{timing['gradcam']:>12.2f}{total:>10.2f}", flush=True)
        result = predict_patient(image, None, models[0], models[1], segmenter, "bench", device, gradcam=True)
        assert set(result.gradcam) == {"CCRT", "IC+CCRT"}  # the whole pipeline runs on this device
        if device == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
