"""Residual-tumour classifiers: an ImageNet CNN fine-tuned on rectangular tumour crops, one per regimen.

The NPC paper fine-tuned efficientnet_b0, inception_resnet_v2, resnet50 and Xception (SGD,
learning rate 0.001, batch 32, 40 epochs) on the crops of CCRT patients for the CCRT model and of
IC+CCRT patients for the IC+CCRT model. Networks come from the deep-feature catalogue
(``rtresponse/data/deep2d_models.json``) under its weights rules: ImageNet weights only from a
local file, random weights only when asked for (``weights=None``). The 1000-class ImageNet head is
replaced by one logit (residual tumour), initialised to zero so that every crop starts at
probability 0.5: a random head would rank patients by whatever its random projection of the
features happens to follow (on MR texture, a strong image property, that alone can give an AUC far
from 0.5 before any label is seen). Every layer is trained.

Units, as in the paper: each slice carries its patient's label ("image" unit), and a patient's
probability is the mean of its slice probabilities. ``unit="patient"`` trains on that mean
directly (the loss sees one probability per patient), our reading of the paper's models "trained
using each patient as a unit".

The epoch kept (beyond the paper): by default a share of the training patients (``validation_fraction``,
stratified by outcome, seeded) is held out, scored after every epoch, and the weights of the epoch
with the lowest validation loss are kept. ``keep="last"`` is the paper's: every training patient
trains, the last epoch is kept.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from ..modelfile import file_settings, load_weights, read_state, save_state
from ..errors import Cancelled, InputError
from ..features.deep2d.catalogue import model_spec
from ..settings import autocast
from .slices import SliceSample

if TYPE_CHECKING:  # pragma: no cover
    import torch

PAPER_NETWORKS = ("efficientnet_b0", "inception_resnet_v2", "resnet50", "xception")
DEFAULT_NETWORK = "xception"  # the paper's best overall
UNITS = ("image", "patient")
KEEP = ("best", "last")
VALIDATION_FRACTION = 0.2  # training patients held out to choose the epoch when keep="best"
POSITIVE = 1  # the class the probability is of: residual tumour
FORMAT = "rtresponse-residual-classifier-1"


@dataclass
class ClassifierConfig:
    """Network, crops and training; defaults are the paper's (SGD 0.001, momentum 0.9, batch 32, 40 epochs)."""

    network: str = DEFAULT_NETWORK
    weights: str | None = "imagenet"  # "imagenet", a weights file, or None (seeded random)
    input_size: int | None = None  # None: the network's ImageNet size (299 for Xception)
    learning_rate: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 32
    epochs: int = 40
    unit: str = "image"
    flip: bool = False  # random left-right flips (not in the paper)
    threshold: float = 0.5  # probability at or above which residual tumour is predicted
    margin_mm: float = 10.0  # crop: margin around the tumour's rectangle
    min_pixels: int = 10  # crop: smallest tumour area (pixels) of a slice that is used
    reference: str = "body"  # crop: intensity percentiles over the body or the whole image
    amp: bool = False
    seed: int = 0
    regimen: str = ""  # the regimen this model predicts for ("CCRT" or "IC+CCRT"), for files and reports
    outcome: str = "residual"  # the manifest outcome it was trained on (1 = residual tumour: the positive class)
    keep: str = "best"  # the epoch kept: lowest validation loss ("best", beyond the paper) or the "last" (the paper)
    validation_fraction: float | None = None  # held-out training patients; None: 0.2 with "best", none with "last"

    def __post_init__(self):
        self.network = model_spec(self.network).name
        if self.unit not in UNITS:
            raise InputError(f"unit must be one of {', '.join(UNITS)}, got '{self.unit}'")
        if self.keep not in KEEP:
            raise InputError(f"keep must be 'best' or 'last', got '{self.keep}'")
        if self.validation_fraction is None:
            self.validation_fraction = VALIDATION_FRACTION if self.keep == "best" else 0.0
        if not 0 <= self.validation_fraction < 1:
            raise InputError(f"validation fraction must lie in [0, 1), got {self.validation_fraction}")
        if self.keep == "best" and self.validation_fraction == 0:
            raise InputError("keep='best' chooses the epoch on validation patients: give a validation fraction "
                             "above 0, or keep='last'")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.input_size is not None and self.input_size < 8:
            raise InputError(f"input size must be at least 8 pixels, got {self.input_size}")
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold must lie between 0 and 1, got {self.threshold}")

    @property
    def size(self) -> int:
        return int(self.input_size or model_spec(self.network).input_size)

    def crop_options(self) -> dict:
        """Keyword arguments of :func:`rtresponse.residual.slices.rectangular_crops` for this model."""
        return {"size": self.size, "margin_mm": self.margin_mm, "min_pixels": self.min_pixels,
                "reference": self.reference}

    def to_dict(self) -> dict:
        values = asdict(self)
        values["weights"] = None if self.weights is None else str(self.weights)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ClassifierConfig":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "keep" not in known:  # written before the epoch was chosen: the last, on every training patient
            known.update(keep="last", validation_fraction=0.0)
        return cls(**known)

    @property
    def positive_class(self) -> str:
        """What the probability is of, for tables and model cards."""
        return f"residual tumour ({self.outcome} = {POSITIVE})"


@dataclass
class Classifier:
    """A fine-tuned network with its configuration (crops, threshold, regimen), training history and the epoch kept.

    ``validation_loss`` / ``validation_auc``: the kept epoch's scores on the held-out training
    patients ``validation_ids`` (NaN without validation patients).
    """

    network: "torch.nn.Module"
    config: ClassifierConfig
    history: list = field(default_factory=list)
    epoch: int = 0  # the epoch whose weights these are
    validation_loss: float = float("nan")
    validation_auc: float = float("nan")
    validation_ids: list = field(default_factory=list)


def _replace_head(net, spec):
    """The ImageNet head replaced by one output (timm's reset_classifier, or the catalogue's linear layer)."""
    import torch

    if spec.library == "timm":
        net.reset_classifier(1)
        return net.get_classifier()
    if spec.id.startswith("squeezenet"):  # a 1 x 1 convolution, then ReLU: a logit must be free to go negative
        net.classifier[1] = torch.nn.Conv2d(net.classifier[1].in_channels, 1, kernel_size=1)
        net.classifier[2] = torch.nn.Identity()
        return net.classifier[1]
    parent_name, _, child = spec.feature_layer.rpartition(".")
    modules = dict(net.named_modules())
    layer = modules.get(spec.feature_layer)
    if not isinstance(layer, torch.nn.Linear):
        raise InputError(f"cannot fine-tune {spec.name}: its output layer '{spec.feature_layer}' is not linear")
    head = torch.nn.Linear(layer.in_features, 1)
    setattr(modules[parent_name] if parent_name else net, child, head)
    return head


def make_classifier(network: str = DEFAULT_NETWORK, weights: str | os.PathLike | None = "imagenet", seed: int = 0,
                    weights_folder=None) -> "torch.nn.Module":
    """A catalogue network with a 1-logit head, every parameter trainable.

    Takes (N, 1, S, S) crops in [0, 1] (repeated to RGB and normalised as the network expects)
    and returns (N, 1) logits of residual tumour. ``weights``: ``"imagenet"`` (a local file; a
    missing one is a ``WeightsNotFound`` error), a file, or None (random weights seeded by ``seed``).
    """
    import torch

    from ..features.deep2d.networks import build

    spec = model_spec(network)
    net = build(spec, weights, seed, weights_folder)
    head = _replace_head(net, spec)
    with torch.no_grad():  # every crop starts at the same probability: no ranking before training
        for parameter in head.parameters():
            parameter.zero_()
    head_name = "net." + next(name for name, module in net.named_modules() if module is head)
    for parameter in net.parameters():
        parameter.requires_grad_(True)

    class ResidualNet(torch.nn.Module):
        """Grey crops in, one residual-tumour logit out; ``net`` is the catalogue network (Grad-CAM layers under it)."""

        def __init__(self):
            super().__init__()
            self.net = net
            self.head_name = head_name
            self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x):
            return self.net((x.expand(-1, 3, -1, -1) - self.mean) / self.std).reshape(x.shape[0], 1)

    return ResidualNet().eval()


def start_at_prevalence(network, prevalence: float) -> None:
    """Set the zero-initialised head's bias to the training prevalence's logit.

    Then the first gradients carry only how the features co-vary with the labels; with the bias
    at 0 the head would also move its weights to lower the mean probability towards the
    prevalence, and so rank patients by the size of their features whatever the labels say.
    """
    import torch

    head = dict(network.named_modules())[network.head_name]
    prevalence = min(max(float(prevalence), 1e-3), 1 - 1e-3)
    with torch.no_grad():
        head.bias.fill_(float(np.log(prevalence / (1 - prevalence))))


def _check_size(network, config: ClassifierConfig, device: str) -> None:
    import torch

    try:
        network.eval()
        with torch.no_grad():
            network(torch.zeros(1, 1, config.size, config.size, device=device))
    except RuntimeError:
        raise InputError(f"{config.size} px is too small an input for {config.network}") from None


def _tensor(samples: Sequence[SliceSample], indices, device: str, rng=None, flip: bool = False):
    import torch

    crops = []
    for i in indices:
        crop = samples[i].pixels
        if flip and rng is not None and rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.ascontiguousarray(crop, dtype=np.float32))
    return torch.from_numpy(np.stack(crops)[:, None]).to(device)


def _labels(samples: Sequence[SliceSample], labels: Mapping[str, int], role: str) -> np.ndarray:
    missing = sorted({s.patient_id for s in samples if s.patient_id not in labels})
    if missing:
        raise InputError(f"no outcome for {role} patient(s) {', '.join(missing[:5])}")
    values = np.array([int(labels[s.patient_id]) for s in samples], dtype=np.float32)
    if len(np.unique(values)) < 2:
        raise InputError(f"the {role} patients all have the same outcome ({int(values[0])}): "
                         "a classifier needs both residual and non-residual patients")
    return values


def _patient_batches(samples: Sequence[SliceSample], batch_size: int, rng: np.random.Generator):
    """Whole patients per batch, about ``batch_size`` slices each (patient unit)."""
    by_patient: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        by_patient.setdefault(sample.patient_id, []).append(index)
    groups = [by_patient[p] for p in rng.permutation(sorted(by_patient))]
    batches, current = [], []
    for group in groups:
        current.append(group)
        if sum(map(len, current)) >= batch_size:
            batches.append(current)
            current = []
    if current:
        if batches and len(current) == 1:
            batches[-1].extend(current)  # a lone patient joins the last batch (two probabilities at least)
        else:
            batches.append(current)
    return batches


def _slice_batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:  # batch norm needs two samples
        starts.pop()
    return [order[s:(starts[i + 1] if i + 1 < len(starts) else n)] for i, s in enumerate(starts)]


def hold_out(labels: Mapping[str, int], fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(training, validation) patient ids: ``fraction`` of each outcome's patients held out, seeded.

    A class of two or more patients gives at least one and keeps at least one; a class of one stays in training.
    """
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for value in sorted(set(labels.values())):
        ids = sorted(pid for pid, v in labels.items() if v == value)
        order = [ids[i] for i in rng.permutation(len(ids))]
        n = min(len(ids) - 1, max(1, int(round(len(ids) * fraction)))) if fraction > 0 else 0
        validation += order[:n]
        train += order[n:]
    return train, validation


def _validation_scores(network, samples: Sequence[SliceSample], labels: Mapping[str, int], config: ClassifierConfig,
                       device: str) -> dict:
    """Patient-level scores on held-out patients: cross-entropy and AUC of each patient's mean slice probability."""
    from sklearn.metrics import roc_auc_score

    probabilities = patient_probabilities(samples, _probabilities(network, samples, config, device))
    truth = np.array([int(labels[pid]) for pid in probabilities], float)
    p = np.clip(np.array(list(probabilities.values())), 1e-6, 1 - 1e-6)
    loss = float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))
    auc = float(roc_auc_score(truth, p)) if len(np.unique(truth)) == 2 else float("nan")
    return {"validation_loss": loss, "validation_auc": auc}


def train_classifier(samples: Sequence[SliceSample], labels: Mapping[str, int], config: ClassifierConfig | None = None,
                     device: str = "cpu", weights_folder=None, progress: Callable[[dict], None] | None = None,
                     should_cancel: Callable[[], bool] | None = None) -> Classifier:
    """Fine-tune ``config.network`` on crops labelled by their patient's outcome (1 = residual tumour).

    ``samples`` must have been cut at ``config.size`` (``rectangular_crops(..., **config.crop_options())``).
    ``config.validation_fraction`` of the patients (per outcome, seeded by ``config.seed``) are held out
    and scored after each epoch; ``config.keep`` says which epoch's weights are returned: "best" (the
    lowest validation loss, earliest on ties) or "last" (the paper). ``progress`` receives each
    epoch's record (epoch, train_loss, train_accuracy, validation_loss, validation_auc, seconds).
    """
    import torch

    config = config or ClassifierConfig()
    if not samples:
        raise InputError("no training slices")
    if samples[0].pixels.shape != (config.size, config.size):
        raise InputError(f"crops are {samples[0].pixels.shape}, the classifier expects {config.size} x {config.size}")
    _labels(samples, labels, "training")
    _, validation_ids = hold_out({s.patient_id: int(labels[s.patient_id]) for s in samples},
                                 config.validation_fraction, config.seed)
    if config.validation_fraction > 0 and not validation_ids:
        raise InputError(f"too few patients to hold out validation patients ({len({s.patient_id for s in samples})}, "
                         "one per outcome): train with more patients, or keep='last' (--keep last)")
    held = set(validation_ids)
    validation = [s for s in samples if s.patient_id in held]
    samples = [s for s in samples if s.patient_id not in held]
    targets = _labels(samples, labels, "training")
    network = make_classifier(config.network, config.weights, config.seed, weights_folder).to(device)
    _check_size(network, config, device)
    patients = {s.patient_id: int(labels[s.patient_id]) for s in samples}
    start_at_prevalence(network, targets.mean() if config.unit == "image" else np.mean(list(patients.values())))
    optimizer = torch.optim.SGD(network.parameters(), lr=config.learning_rate, momentum=config.momentum)
    loss_function = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(config.seed)
    history = []
    kept: tuple[int, float, dict] | None = None  # (epoch, validation loss, weights on the CPU) of the best epoch
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        network.train()
        losses, correct, seen = [], 0, 0
        if config.unit == "image":
            batches = [(indices, None, None) for indices in _slice_batches(len(samples), config.batch_size, rng)]
        else:
            batches = [(np.concatenate(groups), np.repeat(np.arange(len(groups)), [len(g) for g in groups]),
                        np.array([targets[g[0]] for g in groups], dtype=np.float32))
                       for groups in _patient_batches(samples, config.batch_size, rng)]
        for indices, owner, patient_truth in batches:
            x = _tensor(samples, indices, device, rng, config.flip)
            y = torch.from_numpy(targets[indices]).to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, config.amp):
                logits = network(x).float()[:, 0]
            if owner is None:
                loss = loss_function(logits, y)
                predicted, truth = logits >= 0, y
            else:  # the patient's probability is the mean of its slices'
                owner_t = torch.from_numpy(owner).to(device)
                n_patients = int(owner.max()) + 1
                sums = torch.zeros(n_patients, device=device).index_add(0, owner_t, torch.sigmoid(logits))
                counts = torch.bincount(owner_t, minlength=n_patients).float()
                probability = (sums / counts).clamp(1e-6, 1 - 1e-6)
                truth = torch.from_numpy(patient_truth).to(device)
                loss = torch.nn.functional.binary_cross_entropy(probability, truth)
                predicted = probability >= 0.5
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            correct += int((predicted == truth.bool()).sum())
            seen += int(truth.numel())
            if should_cancel is not None and should_cancel():
                raise Cancelled("classifier training cancelled")
        record = {"regimen": config.regimen, "network": config.network, "epoch": epoch,
                  "train_loss": float(np.mean(losses)), "train_accuracy": correct / max(seen, 1)}
        if validation:
            record.update(_validation_scores(network, validation, labels, config, device))
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        loss = record.get("validation_loss", float("nan"))
        if config.keep == "best" and (kept is None or loss < kept[1]):
            kept = (epoch, loss, {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()})
        if progress:
            progress(record)
    epoch = config.epochs
    if kept is not None:
        epoch = kept[0]
        network.load_state_dict(kept[2])
    for record in history:
        record["kept"] = record["epoch"] == epoch
    scores = history[epoch - 1]
    return Classifier(network.eval(), config, history, epoch, float(scores.get("validation_loss", float("nan"))),
                      float(scores.get("validation_auc", float("nan"))), sorted(held))


def predict_slices(classifier: Classifier, samples: Sequence[SliceSample], device: str = "cpu",
                   batch_size: int = 64) -> np.ndarray:
    """Residual-tumour probability of each slice."""
    if not samples:
        return np.zeros(0, np.float32)
    size = classifier.config.size
    if samples[0].pixels.shape != (size, size):
        raise InputError(f"crops are {samples[0].pixels.shape}, the classifier expects {size} x {size}")
    return _probabilities(classifier.network.to(device), samples, classifier.config, device, batch_size)


def _probabilities(network, samples: Sequence[SliceSample], config: ClassifierConfig, device: str,
                   batch_size: int = 64) -> np.ndarray:
    import torch

    network.eval()
    out = []
    with torch.inference_mode(), autocast(device, config.amp):
        for first in range(0, len(samples), batch_size):
            x = _tensor(samples, range(first, min(first + batch_size, len(samples))), device)
            out.append(torch.sigmoid(network(x).float())[:, 0].cpu().numpy())
    return np.concatenate(out)


def patient_probabilities(samples: Sequence[SliceSample], probabilities: Sequence[float]) -> dict[str, float]:
    """{patient: mean of its slice probabilities}, in order of first appearance."""
    sums: dict[str, list[float]] = {}
    for sample, probability in zip(samples, probabilities):
        sums.setdefault(sample.patient_id, []).append(float(probability))
    return {pid: float(np.mean(values)) for pid, values in sums.items()}


# --------------------------------------------------------------------------- files

def save_classifier(path: str | os.PathLike, classifier: Classifier) -> Path:
    """State dict, configuration, history, the epoch kept and its validation scores (plain values), atomically."""
    return save_state(path, FORMAT, classifier.network, config=classifier.config.to_dict(),
                      history=list(classifier.history), epoch=int(classifier.epoch),
                      validation_loss=float(classifier.validation_loss),
                      validation_auc=float(classifier.validation_auc),
                      validation_ids=[str(pid) for pid in classifier.validation_ids])


def load_classifier(path: str | os.PathLike, device: str = "cpu") -> Classifier:
    """A saved classifier on ``device``, read with ``weights_only=True`` (no ImageNet file needed)."""
    state = read_state(path, FORMAT, "the classifier", "a residual-tumour classifier")
    with file_settings(path):
        config = ClassifierConfig.from_dict(state["config"])
        history = list(state.get("history", []))
        kept = (int(state.get("epoch", 0)), float(state.get("validation_loss", float("nan"))),
                float(state.get("validation_auc", float("nan"))), [str(p) for p in state.get("validation_ids", [])])
        network = make_classifier(config.network, None, config.seed)
    load_weights(network, state, path)
    return Classifier(network.to(device).eval(), config, history, *kept)


def weights_provenance(network: str, weights, seed: int = 0, weights_folder=None) -> dict:
    """:func:`rtresponse.provenance.weights_record` of a network's starting weights: the ImageNet or given file
    with its SHA-256, or "random" with its seed."""
    from ..features.deep2d.weights import require_weights
    from ..provenance import weights_record

    if weights is None:
        return weights_record(None, seed)
    if str(weights) == "imagenet":
        spec = model_spec(network)
        return weights_record(require_weights(spec, weights_folder), name=f"{spec.name} ImageNet")
    return weights_record(weights)
