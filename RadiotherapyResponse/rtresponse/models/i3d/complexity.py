"""Model card numbers: parameters, trainable parameters, multiply-accumulates and time per patient.

MACs are counted with forward hooks on convolutions and linear layers (each output element
costs in_channels / groups x kernel volume MACs; a Linear layer in x out per row), the layers
that dominate a ResNet. The paper used ptflops (flops-counter.pytorch), which also counts batch
norms, activations and pooling (well under 1 % more for ResNet-50).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Complexity:
    parameters: int
    trainable_parameters: int
    macs: int
    seconds_per_run: float
    seconds_sd: float


def count_macs(network, example) -> int:
    """Multiply-accumulates of one forward pass of ``network`` on ``example`` (a tensor or a tuple)."""
    import torch

    total = [0]

    def conv_hook(module, inputs, output):
        kernel = int(np.prod(module.kernel_size))
        total[0] += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module, inputs, output):
        total[0] += output.numel() * module.in_features

    handles = []
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            network(*example) if isinstance(example, tuple) else network(example)
    finally:
        for handle in handles:
            handle.remove()
    return int(total[0])


def measure(network, example, repeats: int = 5, warmup: int = 1) -> Complexity:
    """Counts and the mean/SD wall time of a forward pass (synchronised on CUDA)."""
    import torch

    device = next(network.parameters()).device
    times = []
    with torch.no_grad():
        for run in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            network(*example) if isinstance(example, tuple) else network(example)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if run >= warmup:
                times.append(time.perf_counter() - start)
    return Complexity(parameters=sum(p.numel() for p in network.parameters()),
                      trainable_parameters=sum(p.numel() for p in network.parameters() if p.requires_grad),
                      macs=count_macs(network, example), seconds_per_run=float(np.mean(times)),
                      seconds_sd=float(np.std(times, ddof=1)) if len(times) > 1 else 0.0)
