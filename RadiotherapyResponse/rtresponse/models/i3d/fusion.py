"""The trainable part of the DLR model: image head, optional clinical branch, lateral fusion.

Reconstructed from the paper's parameter counts (Jeong et al.: 525,570 trainable parameters for
DLR (MR), 546,370 for DLR (MR + CF) with three clinical factors), which this architecture matches
exactly with its defaults (a test checks both numbers):

    image features (2048) ───────────────────────────────┐
                                                          ├─ concat ─ Linear(·, 256) ─ BatchNorm ─ ReLU ─ Dropout ─ Linear(256, 2)
    clinical factors (m) ─ Linear(m, 64) ─ ReLU ─ Linear(64, 64) ─ ReLU ┘

Inputs are standardised with the training set's mean and SD (stored with the model), so the
head sees comparable scales whatever the backbone's weights.
"""

from __future__ import annotations

import numpy as np


def _module():
    import torch
    from torch import nn

    class FusionNet(nn.Module):
        def __init__(self, n_image: int = 2048, n_clinical: int = 0, hidden: int = 256, clinical_hidden: int = 64,
                     dropout: float = 0.0):
            super().__init__()
            self.n_clinical = int(n_clinical)
            self.clinical = (nn.Sequential(nn.Linear(n_clinical, clinical_hidden), nn.ReLU(),
                                           nn.Linear(clinical_hidden, clinical_hidden), nn.ReLU())
                             if n_clinical else None)
            width = n_image + (clinical_hidden if n_clinical else 0)
            self.head = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(hidden, 2))
            for name, value in (("image_mean", n_image), ("image_scale", n_image),
                                ("clinical_mean", n_clinical), ("clinical_scale", n_clinical)):
                self.register_buffer(name, torch.zeros(value) if "mean" in name else torch.ones(value))

        def set_scaling(self, image: np.ndarray, clinical: np.ndarray | None) -> None:
            """Standardise inputs with these (training) rows' mean and SD."""
            for prefix, data in (("image", image), ("clinical", clinical)):
                if data is None or data.shape[1] == 0:
                    continue
                sd = data.std(axis=0)
                getattr(self, f"{prefix}_mean").copy_(torch.as_tensor(data.mean(axis=0), dtype=torch.float32))
                getattr(self, f"{prefix}_scale").copy_(torch.as_tensor(np.where(sd > 1e-8, sd, 1.0),
                                                                       dtype=torch.float32))

        def forward(self, image, clinical=None):  # -> (N, 2) logits
            x = (image - self.image_mean) / self.image_scale
            if self.clinical is not None:
                if clinical is None:
                    raise ValueError("this model needs the clinical factors")
                x = torch.cat([x, self.clinical((clinical - self.clinical_mean) / self.clinical_scale)], dim=1)
            return self.head(x)

    return FusionNet


def make_fusion(n_image: int = 2048, n_clinical: int = 0, hidden: int = 256, clinical_hidden: int = 64,
                dropout: float = 0.0, seed: int = 0):
    """A fresh (seeded) fusion network; ``n_clinical=0`` gives the image-only DLR (MR) model."""
    import torch

    torch.manual_seed(seed)
    return _module()(n_image, n_clinical, hidden, clinical_hidden, dropout)


def trainable_parameters(network) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)
