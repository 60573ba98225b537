"""CPU and GPU give the same deep features (float32, and within bf16/fp16 noise with --amp).

Usage: python bench/deep2d_gpu_check.py [--models resnet50 ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RadiotherapyResponse"))

from rtresponse.features.deep2d import MODELS, network_outputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    crops = list(np.random.default_rng(1).random((4, 100, 100), dtype=np.float32))
    print(f"{'network':<22}{'max |gpu-cpu| / max |cpu|':>28}{'amp: same':>12}{'amp: corr':>11}")
    for name in args.models:
        cpu = network_outputs(crops, name, None, "cpu")
        gpu = network_outputs(crops, name, None, "cuda")
        amp = network_outputs(crops, name, None, "cuda", amp=True)
        scale = np.abs(cpu).max()
        corr = np.corrcoef(cpu.ravel(), amp.ravel())[0, 1]
        print(f"{name:<22}{np.abs(gpu - cpu).max() / scale:>28.2e}{str(np.allclose(amp, cpu, rtol=0.05, atol=0.05 * scale)):>12}"
              f"{corr:>11.4f}", flush=True)


if __name__ == "__main__":
    main()
