"""Inflate a 2D network into 3D (Carreira & Zisserman's I3D), keeping its ImageNet knowledge.

Every k x k kernel becomes l x k x k: the 2D kernel is repeated l times along depth and divided
by l. A volume made of one image repeated along depth then gives, at every depth position not
reached by the zero padding, exactly the 2D network's activations (the property the tests check
layer by layer). Batch norms keep their statistics, pools gain a depth extent, global pools pool
depth too; everything else (activations, Linear, Flatten, Dropout) works unchanged on 3D tensors.

Depth kernels follow the inflated ResNets of the I3D family: l = k for 1 x 1 and 3 x 3 kernels
and 3 for larger ones (ResNet's 7 x 7 stem), padded by l // 2; depth strides equal the spatial
ones (``depth_stride="same"``) or are 1 everywhere (``depth_stride=1``: thin volumes keep their
slices, at more computation).
"""

from __future__ import annotations

import copy
from typing import Callable

from ...errors import InputError


def default_depth(kernel: int) -> int:
    return kernel if kernel <= 3 else 3


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv(conv, depth: Callable[[int], int], depth_stride):
    import torch

    kh, kw = conv.kernel_size
    length = depth(kh)
    stride = conv.stride[0] if depth_stride == "same" else int(depth_stride)
    if isinstance(conv.padding, str):
        padding = conv.padding if conv.padding == "valid" or stride == 1 else None
        if padding is None:
            raise InputError(f"cannot inflate {conv}: padding='{conv.padding}' with a depth stride")
    else:
        padding = (length // 2, *conv.padding)
    inflated = torch.nn.Conv3d(conv.in_channels, conv.out_channels, (length, kh, kw),
                               stride=(stride, *conv.stride), padding=padding,
                               dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                               padding_mode=conv.padding_mode)
    with torch.no_grad():
        inflated.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, length, 1, 1) / length)
        if conv.bias is not None:
            inflated.bias.copy_(conv.bias)
    inflated.weight.requires_grad_(conv.weight.requires_grad)
    return inflated


def _batch_norm(norm):
    import torch

    inflated = torch.nn.BatchNorm3d(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                                    track_running_stats=norm.track_running_stats)
    inflated.load_state_dict(norm.state_dict())
    inflated.train(norm.training)
    return inflated


def _pool(pool, depth: Callable[[int], int], depth_stride):
    import torch

    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    length = depth(kernel[0])
    depth_step = stride[0] if depth_stride == "same" else int(depth_stride)
    if isinstance(pool, torch.nn.MaxPool2d):
        return torch.nn.MaxPool3d((length, *kernel), (depth_step, *stride), (length // 2, *padding),
                                  dilation=(1, *_pair(pool.dilation)), ceil_mode=pool.ceil_mode)
    return torch.nn.AvgPool3d((length, *kernel), (depth_step, *stride), (length // 2, *padding),
                              ceil_mode=pool.ceil_mode, count_include_pad=pool.count_include_pad,
                              divisor_override=pool.divisor_override)


def _adaptive(pool):
    import torch

    size = _pair(pool.output_size)
    depth = 1 if all(s == 1 for s in size) else None  # a global pool pools depth too
    kind = torch.nn.AdaptiveAvgPool3d if isinstance(pool, torch.nn.AdaptiveAvgPool2d) else torch.nn.AdaptiveMaxPool3d
    return kind((depth, *size))


def _inflated(module, depth, depth_stride):
    import torch

    if isinstance(module, torch.nn.Conv2d):
        return _conv(module, depth, depth_stride)
    if isinstance(module, torch.nn.BatchNorm2d):
        return _batch_norm(module)
    if isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
        return _pool(module, depth, depth_stride)
    if isinstance(module, (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)):
        return _adaptive(module)
    unsupported = (torch.nn.ConvTranspose2d, torch.nn.Upsample, torch.nn.InstanceNorm2d, torch.nn.Dropout2d,
                   torch.nn.LPPool2d, torch.nn.FractionalMaxPool2d)
    if isinstance(module, unsupported):
        raise InputError(f"cannot inflate {type(module).__name__} (supported: Conv2d, BatchNorm2d, pooling)")
    return None


def inflate(module_2d, depth: Callable[[int], int] | int | None = None, depth_stride="same"):
    """A 3D copy of ``module_2d`` (the original is not modified).

    ``depth``: the depth l of an inflated k x k kernel, as a function of k or a fixed int
    (default: k for k <= 3, else 3). ``depth_stride``: "same" (the spatial stride) or an int.
    Parameters keep their ``requires_grad`` flags; modules keep their train/eval mode.
    """
    import torch

    if not isinstance(module_2d, torch.nn.Module):
        raise InputError(f"inflate needs a torch.nn.Module, got {type(module_2d).__name__}")
    if depth_stride != "same" and (not isinstance(depth_stride, int) or depth_stride < 1):
        raise InputError(f"depth_stride must be 'same' or a positive int, got {depth_stride!r}")
    length = default_depth if depth is None else (depth if callable(depth) else (lambda k, d=int(depth): d))
    root = _inflated(module_2d, length, depth_stride)
    if root is not None:
        return root
    network = copy.deepcopy(module_2d)
    for name, child in list(network.named_modules()):
        replacement = _inflated(child, length, depth_stride) if child is not network else None
        if replacement is None:
            continue
        parent_name, _, attribute = name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, attribute, replacement)
    return network
