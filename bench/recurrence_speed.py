"""Training seconds per epoch and inference seconds per patient of the recurrence U-Net at the paper's box.

The paper: 160 x 224 x 128 voxels, batch 2, 23 training and 7 validation patients, 4.26 min per
epoch on two RTX 3090s. Random inputs (speed does not depend on them). With --steps N only N
training steps and N validation patients are timed and the epoch is extrapolated from them
(marked "extrapolated"), for slow CPUs.

Usage: python bench/recurrence_speed.py [--device cuda] [--amp] [--compile] [--steps N] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.recurrence import BOX_XYZ, PAPER_CHANNELS, TrainingConfig, make_unet  # noqa: E402
from rtresponse.settings import autocast  # noqa: E402


def main() -> None:
    import torch
    from monai.losses import DiceLoss

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--train", type=int, default=23)
    parser.add_argument("--validation", type=int, default=7)
    parser.add_argument("--steps", type=int, help="time only this many steps / validation patients and extrapolate")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, config = args.device, TrainingConfig()
    box = tuple(BOX_XYZ[::-1])
    network = make_unet(PAPER_CHANNELS).to(device)
    step_network = torch.compile(network) if args.compile else network
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_function = DiceLoss(sigmoid=True, smooth_nr=config.dice_smooth, smooth_dr=config.dice_smooth)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(config.batch_size, 2) + box).astype(np.float32)).to(device)
    labels = torch.from_numpy((rng.random((config.batch_size, 1) + box) > 0.99).astype(np.float32)).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, args.amp):
            loss = loss_function(step_network(images).float(), labels)
        loss.backward()
        optimizer.step()

    def infer_one():
        with torch.inference_mode(), autocast(device, args.amp):
            torch.sigmoid(network(images[:1]).float()).cpu()

    train_step()  # warm-up (and compilation)
    infer_one()
    sync()
    steps = -(-args.train // config.batch_size)
    timed_steps = min(steps, args.steps or steps)
    start = time.perf_counter()
    for _ in range(timed_steps):
        train_step()
    sync()
    per_step = (time.perf_counter() - start) / timed_steps
    timed_validation = min(args.validation, args.steps or args.validation)
    start = time.perf_counter()
    for _ in range(timed_validation):
        infer_one()
    sync()
    per_patient = (time.perf_counter() - start) / timed_validation
    epoch = per_step * steps + per_patient * args.validation
    measured = timed_steps == steps and timed_validation == args.validation
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    print(f"device: {device} ({where}); torch {torch.__version__}; box {BOX_XYZ} (x, y, z); batch "
          f"{config.batch_size}; {parameters:.1f} M parameters; amp {'on' if args.amp else 'off'}; "
          f"compile {'on' if args.compile else 'off'}")
    print(f"{'training s/step':>16}{'inference s/patient':>21}{'s/epoch':>10}  epoch of {args.train} + "
          f"{args.validation} patients")
    print(f"{per_step:>16.3f}{per_patient:>21.3f}{epoch:>10.1f}  {'measured' if measured else 'extrapolated'}")
    if device == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
