"""Per-patient I3D feature extraction and model inference time, MACs and parameters, beside the paper.

Jeong et al. report for DLR (MR): 160.3 GMac, 525,570 trainable parameters and 48.747 ms (SD 1.951)
per run on a TITAN RTX; DLR (MR + CF): 160.3 GMac, 546,370, 49.593 ms. Their input size is not in
the paper; the table shows our default input and larger ones, including one near 160 GMac.
"Features" = the MONAI input pipeline on a synthetic patient + the frozen backbone; "head" = the
fusion head on cached features (what training and tuning repeat). Random weights (speed does not
depend on them).

Usage: python bench/i3d_speed.py [--device cuda] [--amp] [--repeats 5] [--shapes X Y Z ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.models.i3d.backbone import i3d_resnet50  # noqa: E402
from rtresponse.models.i3d.complexity import count_macs, measure  # noqa: E402
from rtresponse.models.i3d.fusion import make_fusion, trainable_parameters  # noqa: E402
from rtresponse.models.i3d.preprocess import VolumeConfig, volume_input  # noqa: E402
from rtresponse.settings import autocast  # noqa: E402

PAPER = {"DLR (MR)": (160.3, 525_570, 48.747), "DLR (MR + CF)": (160.3, 546_370, 49.593)}


def _patient():
    from rtresponse.cohort import load_manifest
    from rtresponse.sampledata.synthetic import write_cohort

    folder = Path(tempfile.mkdtemp())
    cohort = load_manifest(write_cohort(folder, n_patients=1, seed=0, size=(128, 128, 48)))
    t1, t2 = cohort.read_image("P001", "T1"), cohort.read_image("P001", "T2")
    return {"T1": t1, "T2": t2}, cohort.read_mask("P001", "GTVp", reference=t1)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast for the backbone")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", type=int, nargs="+", default=[96, 96, 24, 224, 224, 32, 224, 224, 76],
                        help="input sizes x y z, several in a row (default: ours, then larger; 224 224 76 is "
                             "about the paper's 160 GMac with two streams... see the table)")
    args = parser.parse_args()
    images, mask = _patient()
    backbone = i3d_resnet50(None).to(args.device)
    print(f"device {args.device}{' (bf16)' if args.amp else ''}, torch threads {torch.get_num_threads()}")
    print(f"{'input x,y,z':>14} {'passes':>6} {'GMac':>7} {'prep ms':>8} {'backbone ms':>12} {'sd':>6} "
          f"{'head ms':>8} {'model':>14} {'trainable':>10}")
    for x, y, z in np.asarray(args.shapes).reshape(-1, 3):
        for mode in ("channels", "streams"):
            config = VolumeConfig(shape_xyz=(int(x), int(y), int(z)), spacing_xyz=(1.0, 1.0, 1.0), mode=mode)
            start = time.perf_counter()
            for _ in range(args.repeats):
                volume = volume_input(images, mask, config)
            prep = (time.perf_counter() - start) / args.repeats
            example = torch.from_numpy(volume).to(args.device)
            with autocast(args.device, args.amp):
                numbers = measure(backbone, example, repeats=args.repeats)
            for name, n_clinical in (("DLR (MR)", 0), ("DLR (MR + CF)", 3)):
                head = make_fusion(2048 * config.passes, n_clinical).to(args.device).eval()
                inputs = (torch.zeros(1, 2048 * config.passes, device=args.device),
                          torch.zeros(1, n_clinical, device=args.device) if n_clinical else None)
                head_numbers = measure(head, inputs, repeats=args.repeats)
                gmacs = (numbers.macs + count_macs(head, inputs)) / 1e9
                print(f"{f'{x},{y},{z}':>14} {config.passes:>6} {gmacs:>7.1f} {1000 * prep:>8.1f} "
                      f"{1000 * numbers.seconds_per_run:>12.1f} {1000 * numbers.seconds_sd:>6.1f} "
                      f"{1000 * head_numbers.seconds_per_run:>8.2f} {name:>14} {trainable_parameters(head):>10,}")
    for name, (gmacs, trainable, ms) in PAPER.items():
        print(f"{'paper':>14} {'?':>6} {gmacs:>7.1f} {'':>8} {ms:>12.1f} {'':>6} {'':>8} {name:>14} {trainable:>10,}")


if __name__ == "__main__":
    main()
