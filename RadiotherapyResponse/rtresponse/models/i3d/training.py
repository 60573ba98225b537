"""Training the fusion head on cached features: cross-entropy, Adam, early stopping on validation loss.

The paper's tuned setting is the default (learning rate 1e-3, batch size 8); its number of
hidden units (25) is ambiguous in the text, and the parameter counts it reports fit a 256-unit
image head and a 64-unit clinical branch, which are therefore the defaults (see
:mod:`.fusion`). The best epoch's weights (lowest validation loss) are kept. Model files hold
the state dict and the configuration only and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import InputError
from ...modelfile import file_settings, load_weights, read_state, save_state
from .features import Cancelled

FORMAT = "rtresponse-i3d-head-1"


@dataclass(frozen=True)
class HeadConfig:
    learning_rate: float = 1e-3
    batch_size: int = 8
    hidden: int = 256
    clinical_hidden: int = 64
    dropout: float = 0.0
    weight_decay: float = 0.0
    max_epochs: int = 300
    patience: int = 30          # epochs without a lower validation loss before stopping
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HeadResult:
    network: object
    history: "pd.DataFrame"     # epoch, train_loss, validation_loss
    best_epoch: int
    best_validation_loss: float
    config: HeadConfig = field(default_factory=HeadConfig)


def _tensors(image, clinical, y, device):
    import torch

    # torch.tensor copies: pandas may hand over read-only arrays
    image_t = torch.tensor(np.asarray(image, np.float32), device=device)
    clinical_t = None if clinical is None else torch.tensor(np.asarray(clinical, np.float32), device=device)
    y_t = None if y is None else torch.tensor(np.asarray(y), dtype=torch.long, device=device)
    return image_t, clinical_t, y_t


def _check(image, clinical, y, role: str) -> None:
    if len(image) == 0:
        raise InputError(f"no {role} patients")
    if clinical is not None and len(clinical) != len(image):
        raise InputError(f"{role}: {len(image)} image rows but {len(clinical)} clinical rows")
    if y is not None and len(y) != len(image):
        raise InputError(f"{role}: {len(image)} rows but {len(y)} outcomes")
    if clinical is not None and np.isnan(np.asarray(clinical, float)).any():
        raise InputError(f"{role}: clinical factors have missing values; encode them first (e.g. 'unknown')")


def train_head(image_train, y_train, image_val, y_val, clinical_train=None, clinical_val=None,
               config: HeadConfig = HeadConfig(), device: str = "cpu",
               progress: Callable[[int, int, float], None] | None = None,
               should_cancel: Callable[[], bool] | None = None,
               on_epoch: Callable[[dict], None] | None = None) -> HeadResult:
    """Fit a :func:`~.fusion.make_fusion` network; returns the best-validation-loss weights.
    ``on_epoch(row)`` gets each epoch's {"epoch", "train_loss", "validation_loss"} (live training curves)."""
    import pandas as pd
    import torch

    from .fusion import make_fusion

    _check(image_train, clinical_train, y_train, "training")
    _check(image_val, clinical_val, y_val, "validation")
    if (clinical_train is None) != (clinical_val is None):
        raise InputError("give clinical factors for both training and validation, or for neither")
    if len(np.unique(y_train)) < 2:
        raise InputError("the training patients hold a single outcome class")
    n_clinical = 0 if clinical_train is None else np.shape(clinical_train)[1]
    network = make_fusion(np.shape(image_train)[1], n_clinical, config.hidden, config.clinical_hidden,
                          config.dropout, config.seed)
    network.set_scaling(np.asarray(image_train, np.float32),
                        None if clinical_train is None else np.asarray(clinical_train, np.float32))
    network.to(device)
    x_img, x_cli, y = _tensors(image_train, clinical_train, y_train, device)
    v_img, v_cli, v_y = _tensors(image_val, clinical_val, y_val, device)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_function = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    best, best_epoch, best_state, stale, rows = np.inf, 0, None, 0, []
    for epoch in range(1, config.max_epochs + 1):
        if should_cancel is not None and should_cancel():
            raise Cancelled("training cancelled")
        network.train()
        order = torch.randperm(len(y), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(y), config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2:  # batch norm needs two rows; the odd one out waits for the next epoch
                continue
            optimiser.zero_grad()
            loss = loss_function(network(x_img[batch], None if x_cli is None else x_cli[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        network.eval()
        with torch.no_grad():
            validation = float(loss_function(network(v_img, v_cli), v_y))
        rows.append({"epoch": epoch, "train_loss": total / len(y), "validation_loss": validation})
        if on_epoch:
            on_epoch(dict(rows[-1]))
        if progress:
            progress(epoch, config.max_epochs, validation)
        if validation < best - 1e-6:
            best, best_epoch, stale = validation, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    network.load_state_dict(best_state)
    network.eval()
    return HeadResult(network, pd.DataFrame(rows), best_epoch, float(best), config)


def predict_proba(network, image, clinical=None, device: str | None = None) -> np.ndarray:
    """P(positive class) for each row."""
    import torch

    device = device or next(network.parameters()).device
    x_img, x_cli, _ = _tensors(image, clinical, None, device)
    network.eval()
    with torch.no_grad():
        return torch.softmax(network(x_img, x_cli), dim=1)[:, 1].float().cpu().numpy()


def save_head(path: str | os.PathLike, network, metadata: dict) -> Path:
    """State dict + architecture + ``metadata`` (JSON-able: features, clinical columns, volume config...)."""
    head = network.head
    architecture = {"n_image": int(network.image_mean.numel()), "n_clinical": int(network.n_clinical),
                    "hidden": int(head[0].out_features), "dropout": float(head[3].p),
                    "clinical_hidden": int(network.clinical[0].out_features) if network.clinical is not None else 64}
    return save_state(path, FORMAT, network, architecture=json.dumps(architecture), metadata=json.dumps(metadata))


def load_head(path: str | os.PathLike, device: str = "cpu") -> tuple[object, dict]:
    """(network in eval mode, metadata); refuses files that are not rtresponse I3D heads."""
    from .fusion import make_fusion

    payload = read_state(path, FORMAT, "the model", "an rtresponse I3D model")
    with file_settings(path):
        architecture = json.loads(payload["architecture"])
        metadata = json.loads(payload["metadata"])
        network = make_fusion(**architecture)
    load_weights(network, payload, path)
    network.to(device).eval()
    return network, metadata
