"""Images per second of every deep-feature network (random weights: speed does not depend on them).

Times the network input (bilinear resize of 100 x 100 crops, 3 channels, normalisation) plus
the frozen forward pass, in batches, after warm-up runs; prints one table row per network.

Usage: python bench/deep2d_speed.py [--device cpu|cuda] [--batch-size 16] [--repeats 3] [--amp]
       [--models resnet50 inception_resnet_v2 ...] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.features.deep2d import MODELS, build, to_input  # noqa: E402
from rtresponse.settings import autocast  # noqa: E402


def images_per_second(name: str, device: str, batch_size: int, repeats: int, amp: bool) -> tuple[float, float]:
    import torch

    spec = MODELS[name]
    network = build(name, weights=None).to(device)
    crops = list(np.random.default_rng(0).random((batch_size, 100, 100), dtype=np.float32))

    def once():
        with torch.inference_mode(), autocast(device, amp):
            out = network(to_input(crops, spec, device))
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    once()  # warm-up: allocations, cuDNN algorithm choice
    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    best = min(times)
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    return batch_size / best, parameters


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'CPU'}, " \
                                                                       f"{torch.get_num_threads()} threads"
    print(f"device: {args.device} ({where}); torch {torch.__version__}; batch {args.batch_size}; "
          f"amp {'on' if args.amp else 'off'}; best of {args.repeats}")
    print(f"{'network':<22}{'input':>6}{'params (M)':>12}{'images/s':>11}{'ms/image':>10}")
    for name in args.models:
        rate, parameters = images_per_second(name, args.device, args.batch_size, args.repeats, args.amp)
        print(f"{name:<22}{MODELS[name].input_size:>6}{parameters:>12.1f}{rate:>11.1f}{1000 / rate:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
