"""The residual-tumour classifier keeps the epoch with the lowest validation loss (or the last, as the paper), on
patients held out of its training patients, and reports that epoch's scores (issue 15, item 2)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from rtresponse.errors import InputError  # noqa: E402
from rtresponse.residual.classification import (ClassifierConfig, hold_out, load_classifier,  # noqa: E402
                                                patient_probabilities, predict_slices, save_classifier,
                                                train_classifier)
from rtresponse.residual.slices import SliceSample  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_reproducible")  # seed 0, one thread, deterministic (conftest)

# SqueezeNet at 32 px from seeded random weights, lr 0.01: the validation loss falls while the planted square is
# learned, then rises as the network memorises the training patients' noise (0.692 0.679 0.649 0.490 0.550 0.566)
SMALL = dict(network="squeezenet", weights=None, input_size=32, epochs=6, learning_rate=0.01, batch_size=16, seed=0)


def crops(n_patients: int = 20, seed: int = 0, signal: float = 0.2):
    """Three noise slices per patient; residual patients (every second) have a brighter centre square."""
    rng = np.random.default_rng(seed)
    samples, labels = [], {}
    for i in range(n_patients):
        pid, label = f"P{i:02d}", i % 2
        labels[pid] = label
        for z in range(3):
            pixels = rng.uniform(0, 1, (32, 32)).astype(np.float32)
            centre = pixels[8:24, 8:24]
            pixels[8:24, 8:24] = np.clip(centre * (1 - signal) + signal * label * 0.9 + 0.05, 0, 1)
            samples.append(SliceSample(pid, z, (0, 0, 32, 32), pixels, np.ones((32, 32), bool), 256, 256.0))
    return samples, labels


def validation_loss(classifier, samples, labels) -> float:
    held = [s for s in samples if s.patient_id in set(classifier.validation_ids)]
    probability = patient_probabilities(held, predict_slices(classifier, held))
    p = np.clip(np.array(list(probability.values())), 1e-6, 1 - 1e-6)
    y = np.array([labels[pid] for pid in probability])
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_kept_epoch_and_its_validation_scores(keep, tmp_path):
    samples, labels = crops()
    classifier = train_classifier(samples, labels, ClassifierConfig(**SMALL, keep=keep, validation_fraction=0.2))
    losses = [record["validation_loss"] for record in classifier.history]
    best = int(np.argmin(losses)) + 1
    assert best < SMALL["epochs"], losses  # the planted run peaks before its last epoch
    expected = best if keep == "best" else SMALL["epochs"]
    assert classifier.epoch == expected and classifier.validation_loss == losses[expected - 1]
    assert [record["kept"] for record in classifier.history] == [e == expected for e in range(1, 7)]
    # 4 of 20 patients held out, 2 per outcome, never trained on
    assert len(classifier.validation_ids) == 4 and sum(labels[p] for p in classifier.validation_ids) == 2
    # the weights are those of the kept epoch: scoring them again gives its loss
    assert validation_loss(classifier, samples, labels) == pytest.approx(losses[expected - 1], abs=1e-5)
    again = load_classifier(save_classifier(tmp_path / "c.pt", classifier))
    assert again.epoch == expected and again.validation_loss == pytest.approx(classifier.validation_loss)
    assert again.validation_ids == classifier.validation_ids and again.config.keep == keep


def test_the_paper_setting_trains_on_every_patient_and_keeps_the_last():
    samples, labels = crops(6)
    config = ClassifierConfig(**{**SMALL, "epochs": 2}, keep="last")
    assert config.validation_fraction == 0
    classifier = train_classifier(samples, labels, config)
    assert classifier.epoch == 2 and classifier.validation_ids == [] and np.isnan(classifier.validation_loss)
    assert "validation_loss" not in classifier.history[0]


def test_hold_out_is_stratified_seeded_and_refuses_too_few_patients():
    labels = {f"P{i}": int(i < 3) for i in range(10)}  # 3 residual, 7 not
    train, validation = hold_out(labels, 0.2, seed=1)
    assert sorted(train + validation) == sorted(labels) and hold_out(labels, 0.2, seed=1) == (train, validation)
    assert sorted(labels[p] for p in validation) == [0, 1]  # round(1.4) = 1 of 7, at least 1 of 3
    samples, two = crops(2)
    with pytest.raises(InputError, match="too few patients to hold out validation patients.*keep='last'"):
        train_classifier(samples, two, ClassifierConfig(**SMALL))
    with pytest.raises(InputError, match="keep must be 'best' or 'last'"):
        ClassifierConfig(keep="first")
    with pytest.raises(InputError, match="give a validation fraction above 0"):
        ClassifierConfig(keep="best", validation_fraction=0)
    # files written before the epoch was chosen were trained on every patient, last epoch kept
    old = ClassifierConfig.from_dict({"network": "squeezenet"})
    assert old.keep == "last" and old.validation_fraction == 0
