"""Residual tumour after CCRT / IC+CCRT (the NPC paper): crops, split, networks, files, a planted signal, the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("monai")

from conftest import check_margin  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.evaluation.segmentation import dice  # noqa: E402
from rtresponse.features.deep2d import WeightsNotFound, model_spec  # noqa: E402
from rtresponse.recommendation import recommend  # noqa: E402
from rtresponse.residual import (Classifier, ClassifierConfig, SegmentationSlices, SegmenterConfig,  # noqa: E402
                                 compare_segmenters, evaluate_segmenter, evaluate_units, load_classifier, load_crops,
                                 load_segmenter, make_classifier, make_segmenter, predict_patient, predict_slices,
                                 read_tumour, rectangular_crops, run_study, save_classifier, save_segmenter,
                                 segment_image, segmentation_slices, split_by_regimen, study_table,
                                 train_classifier, train_segmenter)
from rtresponse.residual.classification import Cancelled  # noqa: E402
from rtresponse.residual.slices import normalise, paste_maps  # noqa: E402

COUNTERFACTUAL = {"CCRT": "residual_CCRT", "IC+CCRT": "residual_IC_CCRT"}
# The acceptance test's small configuration: SqueezeNet 1.1 from the catalogue (1 ms per 32 px crop on a
# 2-core CPU; the paper's networks cost 5-15 times more) from seeded random weights (no ImageNet files here),
# at the paper's learning rate 0.001. At 0.01 (momentum 0.9) training was chaotic: the CCRT model's held-out
# AUC went from 0.28 to 0.94 with the training seed and with the CPU's SIMD kernels (0.731 here with
# AVX-512, 0.889 with AVX2, 0.806 without SIMD: issue 14), at 0.001 it stays within 0.91-0.95.
# keep="last" is the paper's: every training patient trains and the last epoch is kept (the values measured in
# docs/residual-tumour.md); the epoch kept on validation patients is tested in test_classifier_checkpoint.py.
SMALL = dict(network="squeezenet", weights=None, input_size=32, epochs=12, learning_rate=0.001, batch_size=32,
             keep="last")


# seed 0, one thread, deterministic; pretrained weights never from the user's caches (conftest)
pytestmark = pytest.mark.usefixtures("torch_reproducible", "weights_only_here")


def volume(shape=(5, 40, 50), spacing=(1.5, 2.0, 3.0), box=((1, 4), (12, 20), (36, 47))):
    """An MR-like volume (a tissue gradient, air at the left edge) with a box-shaped tumour on slices box[0]."""
    import SimpleITK as sitk

    z, y, x = np.indices(shape)
    values = (200 + 4 * x + 3 * y + 10 * z).astype(np.float32)
    values[:, :, :3] = 0  # air
    tumour = np.zeros(shape, np.uint8)
    (z0, z1), (y0, y1), (x0, x1) = box
    tumour[z0:z1, y0:y1, x0:x1] = 1
    values[tumour > 0] = 600
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, 7.5, 100.0))
    mask = sitk.GetImageFromArray(tumour)
    mask.CopyInformation(image)
    return image, mask


# --------------------------------------------------------------------------- crops

def test_crops_lie_on_the_tumour_box_with_a_margin_and_keep_the_surrounding_tissue():
    import SimpleITK as sitk

    image, mask = volume()
    samples = rectangular_crops(image, mask, "P1", size=24, margin_mm=10, reference="image")
    assert [s.slice_index for s in samples] == [1, 2, 3]
    sample = samples[0]
    x0, y0, x1, y1 = sample.box
    # the tumour (x 36..46, y 12..19) with 10 mm each side (whole pixels of 1.5 x 2 mm), square in mm
    assert (36 - x0) * 1.5 >= 10 and (x1 - 47) * 1.5 >= 10 and (12 - y0) * 2 >= 10 and (y1 - 20) * 2 >= 10
    assert abs((x1 - x0) * 1.5 - (y1 - y0) * 2.0) <= 2.0
    assert x1 > 50  # the square box reaches past the image's right edge: padded, not shifted
    assert sample.pixels.shape == sample.mask.shape == (24, 24) and sample.pixels.dtype == np.float32
    assert 0.0 <= sample.pixels.min() and sample.pixels.max() <= 1.0
    tissue = sample.pixels[~sample.mask & (sample.pixels > 0)]
    assert tissue.size > 0.3 * sample.pixels.size and tissue.std() > 0.01  # surroundings kept, with their gradient
    assert 0.1 < sample.mask.mean() < 0.6 and sample.area_pixels == 88 and sample.area_mm2 == pytest.approx(264.0)
    assert np.median(sample.pixels[sample.mask]) > 0.99  # the tumour is the brightest tissue (edges interpolated)
    # maps go back onto the MR grid on their slice and box only
    back = paste_maps(samples, [np.ones((24, 24), np.float32)] * 3, image)
    assert back.GetSize() == image.GetSize() and back.GetSpacing() == image.GetSpacing()
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()
    values = sitk.GetArrayFromImage(back)
    assert values[0].max() == 0 and values[4].max() == 0
    expected = np.zeros(values.shape[1:], np.float32)
    expected[max(y0, 0):y1, max(x0, 0):min(x1, 50)] = 1
    np.testing.assert_allclose(values[2], expected, atol=1e-6)
    assert sitk.GetArrayViewFromImage(image).sum() == pytest.approx(sitk.GetArrayViewFromImage(volume()[0]).sum())


def test_normalisation_is_per_patient_between_percentiles():
    image, _ = volume()
    body, whole = normalise(image, "body"), normalise(image, "image")
    assert body.dtype == np.float32 and body.min() == 0.0 and body.max() == 1.0
    assert not np.allclose(body, whole)  # the air changes the whole-image percentiles, not the body's
    scaled = normalise(image * 3.7 + 12.0, "body")  # MR has no absolute scale: a linear change changes nothing
    np.testing.assert_allclose(scaled, body, atol=1e-5)
    with pytest.raises(InputError, match="intensity reference"):
        normalise(image, "lungs")


def test_bad_masks_are_errors_naming_the_patient():
    import SimpleITK as sitk

    image, mask = volume()
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(InputError, match=r"^patient P007: tumour mask is empty$"):
        rectangular_crops(image, empty, "P007")
    with pytest.raises(InputError, match="patient P007: no axial slice has at least 500 tumour pixels .largest: 88."):
        rectangular_crops(image, mask, "P007", min_pixels=500)
    moved = sitk.Image(mask)
    moved.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="patient P007: mask geometry"):
        rectangular_crops(image, moved, "P007")


# --------------------------------------------------------------------------- split

def test_split_is_4_to_1_per_regimen_and_outcome_by_patient_and_seeded():
    rng = np.random.default_rng(0)
    ids = [f"P{i:03d}" for i in range(90)]
    table = pd.DataFrame({"regimen": rng.choice(["CCRT", "IC+CCRT"], 90), "outcome": rng.integers(0, 2, 90)},
                         index=pd.Index(ids, name="patient_id"))
    split = split_by_regimen(table, seed=1)
    assert split.index.is_unique and set(split.index) == set(ids) and set(split["split"]) == {"train", "test"}
    for (regimen, outcome), group in split.groupby(["regimen", "outcome"]):
        assert (group["split"] == "test").sum() == max(1, round(len(group) / 5)), (regimen, outcome)
    assert split_by_regimen(table, seed=1).equals(split)
    assert not split_by_regimen(table, seed=2)["split"].equals(split["split"])
    few = table[~((table["regimen"] == "IC+CCRT") & (table["outcome"] == 1))].iloc[:-1]
    few = pd.concat([few, table[(table["regimen"] == "IC+CCRT") & (table["outcome"] == 1)].iloc[:1]])
    with pytest.raises(InputError, match="IC\\+CCRT: 1 residual patient"):
        split_by_regimen(few)


# --------------------------------------------------------------------------- networks and files

@pytest.mark.parametrize("name, size", [("efficientnet_b0", 64), ("inception_resnet_v2", 96), ("resnet50", 64),
                                        ("xception", 64)])
def test_the_papers_four_networks_get_a_one_logit_head_and_a_gradcam_layer(name, size):
    network = make_classifier(name, weights=None)
    assert all(p.requires_grad for p in network.parameters())  # fine-tuned, not frozen
    assert f"net.{model_spec(name).cam_layer}" in dict(network.named_modules())
    with torch.no_grad():
        logits = network(torch.rand(2, 1, size, size))
    assert logits.shape == (2, 1) and torch.all(logits == 0)  # zero-initialised head: probability 0.5 before training


def test_missing_imagenet_weights_are_an_error_never_random_weights(tmp_path):
    with pytest.raises(WeightsNotFound, match="ImageNet weights for 'resnet50' are not on this computer"):
        make_classifier("resnet50", weights="imagenet")
    image, mask = volume()
    samples = rectangular_crops(image, mask, "P1", size=64) + rectangular_crops(image, mask, "P2", size=64)
    with pytest.raises(WeightsNotFound, match="ImageNet weights for 'xception'"):  # training asks, and stops
        train_classifier(samples, {"P1": 0, "P2": 1}, ClassifierConfig(network="xception", input_size=64, keep="last"))
    with pytest.raises(WeightsNotFound, match="'resnet50'"):  # DeepLabv3's backbone follows the same rule
        make_segmenter("deeplabv3", weights="imagenet")
    with pytest.raises(InputError, match="U-Net has no ImageNet weights"):
        make_segmenter("unet", weights="imagenet")


def test_deeplabv3_takes_its_backbone_from_a_resnet50_file(tmp_path):
    import torchvision

    torch.manual_seed(5)
    resnet = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)
    network = make_segmenter("deeplabv3", weights=path)
    assert torch.equal(network.deeplab.backbone.conv1.weight, resnet.conv1.weight)
    with torch.no_grad():
        assert network.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(InputError, match="weights do not fit DeepLabv3"):
        torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
        make_segmenter("deeplabv3", weights=tmp_path / "bad.pth")


def test_model_files_round_trip_with_weights_only_and_refuse_code(tmp_path):
    image, mask = volume()
    samples = rectangular_crops(image, mask, "P1", size=32)
    config = ClassifierConfig(**{**SMALL, "epochs": 1}, regimen="CCRT")
    with pytest.raises(InputError, match="same outcome"):
        train_classifier(samples, {"P1": 1}, config)
    two = samples + rectangular_crops(image, mask, "P2", size=32)
    records = []
    with pytest.raises(Cancelled):
        train_classifier(two, {"P1": 0, "P2": 1}, config, should_cancel=lambda: True)
    patient_unit = train_classifier(two, {"P1": 0, "P2": 1}, ClassifierConfig(**{**SMALL, "epochs": 2},
                                                                             unit="patient"), progress=records.append)
    assert [r["epoch"] for r in records] == [1, 2] and np.isfinite(records[-1]["train_loss"])
    assert patient_unit.config.unit == "patient"
    model = Classifier(make_classifier("squeezenet", weights=None, seed=3), config)
    save_classifier(tmp_path / "ccrt.pt", model)
    raw = torch.load(tmp_path / "ccrt.pt", weights_only=True)  # tensors and plain values only
    assert raw["config"]["regimen"] == "CCRT" and raw["config"]["network"] == "squeezenet"
    loaded = load_classifier(tmp_path / "ccrt.pt")
    assert loaded.config == config
    np.testing.assert_allclose(predict_slices(loaded, samples), predict_slices(model, samples), atol=1e-6)

    segmenter = SimpleNamespace(network=make_segmenter("unet", None, unet_features=(4, 4, 8, 8, 16, 4)),
                                config=SegmenterConfig(architecture="unet", input_size=32,
                                                       unet_features=(4, 4, 8, 8, 16, 4)), validation_dice=0.5,
                                epoch=1)
    save_segmenter(tmp_path / "segmenter.pt", segmenter)
    back = load_segmenter(tmp_path / "segmenter.pt")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(back.network(x), segmenter.network.eval()(x), atol=1e-6)
    assert back.config.unet_features == (4, 4, 8, 8, 16, 4)

    from fractions import Fraction  # any object that needs code (its class) to load

    torch.save({"format": "rtresponse-residual-classifier-1", "config": Fraction(1, 3)}, tmp_path / "code.pt")
    with pytest.raises(InputError, match="cannot read the classifier"):
        load_classifier(tmp_path / "code.pt")
    with pytest.raises(InputError, match="not a residual-tumour classifier file"):
        load_classifier(tmp_path / "segmenter.pt")


# --------------------------------------------------------------------------- a planted signal

def null_labels(labels: pd.Series, seed: int) -> pd.Series:
    """Shuffled labels that carry nothing of the true ones: each true class gets the same share of positives.

    Even so, one network trained on them picks up the strongest image property (the tumour's
    texture) in a direction set by chance: single runs gave held-out AUCs from 0.01 to 0.93 in a
    sweep (docs/residual-tumour.md). Only the mean of several runs is a negative control.
    """
    rng = np.random.default_rng(seed)
    share = labels.mean()
    out = pd.Series(0, index=labels.index)
    for value in (0, 1):
        ids = labels.index[labels == value]
        out[rng.choice(ids, int(round(len(ids) * share)), replace=False)] = 1
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """100 synthetic patients whose residual tumour follows the T1 texture (signal 3), split 4:1 per regimen."""
    from rtresponse.cohort import load_manifest
    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(tmp_path_factory.mktemp("residual") / "cohort", n_patients=100, seed=11,
                            size=(48, 48, 16), signal=3)
    cohort = load_manifest(manifest)
    table, failures = study_table(cohort)
    split = split_by_regimen(table, seed=0)
    crops, failures = load_crops(cohort, list(split.index), "T1", "GTVp", {"size": SMALL["input_size"]})
    assert not failures
    return SimpleNamespace(cohort=cohort, split=split, crops=crops, models={})


def _train(planted, regimen: str, shuffle: int | None = None) -> Classifier:
    ids = planted.split.index[(planted.split["regimen"] == regimen) & (planted.split["split"] == "train")]
    labels = planted.split.loc[ids, "outcome"]
    if shuffle is not None:
        labels = null_labels(labels, shuffle)
    samples = [s for pid in ids for s in planted.crops[pid]]
    return train_classifier(samples, labels.to_dict(), ClassifierConfig(**SMALL, regimen=regimen))


def _held_out_auc(planted, model: Classifier, regimen: str) -> float:
    """Patient-level AUC on every held-out patient of both regimens.

    Synthetic data know each patient's outcome under both regimens (outcome_residual_CCRT and
    outcome_residual_IC_CCRT), so each model is scored on all held-out patients, not only those who
    received its regimen: twice the patients, a steadier AUC. A real cohort cannot do this.
    """
    test = planted.split.index[planted.split["split"] == "test"]
    samples = [s for pid in test for s in planted.crops[pid]]
    truth = planted.cohort.outcomes()[COUNTERFACTUAL[regimen]].astype(int)
    table = pd.DataFrame({"patient_id": [s.patient_id for s in samples],
                          "probability": predict_slices(model, samples)})
    table["label"] = table["patient_id"].map(truth)
    return float(evaluate_units(table).loc["patient", "auc"])


@pytest.mark.parametrize("regimen", ["CCRT", "IC+CCRT"])
def test_a_planted_residual_signal_is_learned_for_each_regimen(planted, regimen):
    model = planted.models[regimen] = _train(planted, regimen)
    auc = _held_out_auc(planted, model, regimen)
    check_margin(f"{regimen}: held-out patient AUC", auc, PLANTED_MIN_AUC)


def test_training_on_shuffled_labels_learns_nothing(planted):
    aucs = [_held_out_auc(planted, _train(planted, regimen, shuffle=seed), regimen)
            for regimen in ("CCRT", "IC+CCRT") for seed in (1, 2)]
    print("shuffled-label held-out patient AUCs", np.round(aucs, 3))
    check_margin("shuffled-label mean held-out patient AUC", float(np.mean(aucs)), SHUFFLED_MIN_MEAN_AUC,
                 upper=SHUFFLED_MAX_MEAN_AUC)


PLANTED_MIN_AUC = 0.75
SHUFFLED_MIN_MEAN_AUC, SHUFFLED_MAX_MEAN_AUC = 0.30, 0.65


def test_one_patient_through_both_models(planted):
    import SimpleITK as sitk

    if set(planted.models) != {"CCRT", "IC+CCRT"}:
        pytest.skip("needs the planted models")
    pid = planted.split.index[planted.split["split"] == "test"][0]
    image = planted.cohort.read_image(pid, "T1")
    mask = planted.cohort.read_mask(pid, "GTVp", image="T1", reference=image)
    result = predict_patient(image, mask, planted.models["CCRT"], planted.models["IC+CCRT"], patient_id=pid)
    for regimen in ("CCRT", "IC+CCRT"):
        assert 0 <= result.probabilities[regimen] <= 1
        assert result.residual[regimen] == (result.probabilities[regimen] >= 0.5)
        cam = result.gradcam[regimen]
        assert cam.GetSize() == image.GetSize() and cam.GetOrigin() == image.GetOrigin()
        values = sitk.GetArrayFromImage(cam)
        assert values.max() <= 1 and set(np.flatnonzero(values.any(axis=(1, 2)))) <= set(result.slices["slice_index"])
    assert result.recommendation == recommend(result.residual["CCRT"], result.residual["IC+CCRT"])
    assert result.reasoning.endswith(result.recommendation + ".") or "IBT" in result.reasoning
    assert len(result.slices) == len(planted.crops[pid]) and result.as_row()["patient_id"] == pid
    with pytest.raises(InputError, match="no tumour mask: give a mask or a segmenter"):
        predict_patient(image, None, planted.models["CCRT"], planted.models["IC+CCRT"], patient_id=pid)
    with pytest.raises(InputError, match="the CCRT model was trained for IC\\+CCRT"):
        predict_patient(image, mask, planted.models["IC+CCRT"], planted.models["IC+CCRT"])
    asked = []  # Cancel clicked at the third question (before the first Grad-CAM): the prediction stops there

    def cancel_on_third_question():
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Cancelled, match=f"prediction for {pid} cancelled"):
        predict_patient(image, mask, planted.models["CCRT"], planted.models["IC+CCRT"], patient_id=pid,
                        should_cancel=cancel_on_third_question)
    assert len(asked) == 3


# --------------------------------------------------------------------------- segmentation

def test_the_segmenter_finds_the_tumour(planted):
    """The paper's tumour is the primary with the nodes: the segmenter learns their union (nodes look the same)."""
    import SimpleITK as sitk

    ids = list(planted.split.index)
    parts = {"train": ids[:24], "validation": ids[24:30]}
    slices = {}
    for part, pids in parts.items():
        loaded = []
        for pid in pids:
            image = planted.cohort.read_image(pid, "T1")
            mask = read_tumour(planted.cohort, pid, "GTVp+GTVn", "T1", image)
            loaded.append(segmentation_slices(image, mask, pid, size=48, negatives=0.25))
        slices[part] = SegmentationSlices.concatenate(loaded)
    config = SegmenterConfig(architecture="unet", input_size=48, epochs=8, batch_size=16, learning_rate=3e-3,
                             unet_features=(8, 8, 16, 32, 64, 8))
    segmenter = train_segmenter(slices["train"], slices["validation"], config)
    score = evaluate_segmenter(segmenter, slices["validation"])
    print("U-Net validation Dice", {k: round(v, 3) for k, v in score.items()},
          f"epoch {segmenter.epoch} kept; by epoch", [round(r["validation_dice"], 3) for r in segmenter.history])
    assert dice(np.zeros((48, 48), bool), slices["validation"].masks[0]) == 0.0  # what an empty prediction scores
    check_margin("U-Net validation Dice", score["dice_mean"], SEGMENTATION_MIN_DICE)
    assert score["dice_low"] < score["dice_mean"] < score["dice_high"]
    image = planted.cohort.read_image(ids[30], "T1")
    truth = read_tumour(planted.cohort, ids[30], "GTVp+GTVn", "T1", image)
    predicted = segment_image(segmenter, image)
    assert predicted.GetSize() == image.GetSize() and predicted.GetSpacing() == image.GetSpacing()
    assert predicted.GetOrigin() == image.GetOrigin() and predicted.GetDirection() == image.GetDirection()
    volume_dice = dice(sitk.GetArrayFromImage(predicted) > 0, sitk.GetArrayFromImage(truth) > 0)
    check_margin("U-Net Dice on a held-out volume", volume_dice, SEGMENTATION_MIN_DICE)

    few = SegmentationSlices(slices["train"].images[:12], slices["train"].masks[:12])
    comparison = compare_segmenters(few, slices["validation"], SegmenterConfig(
        input_size=48, epochs=1, batch_size=6, backbone_weights=None, unet_features=(4, 4, 8, 8, 16, 4)))
    assert list(comparison.table.index) == ["unet", "deeplabv3"]
    assert comparison.best.config.architecture == comparison.table["dice_mean"].idxmax()


SEGMENTATION_MIN_DICE = 0.5


# --------------------------------------------------------------------------- cohort study and command line

@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    """24 synthetic patients; one unreadable T1 and one empty mask, to be left out and reported."""
    import SimpleITK as sitk

    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(tmp_path_factory.mktemp("tiny") / "cohort", n_patients=24, seed=4, size=(48, 48, 16),
                            signal=3)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False).set_index("patient_id")
    broken, hollow = "P005", "P009"
    (manifest.parent / table.at[broken, "image_T1"]).write_bytes(b"not an image")
    empty = sitk.Image([48, 48, 16], sitk.sitkUInt8)
    empty.SetSpacing((2.0, 2.0, 3.0))
    empty.SetOrigin((-48.0, -48.0, -24.0))
    sitk.WriteImage(empty, str(manifest.parent / "P009_empty.nrrd"))
    table.at[hollow, "mask_GTVp"] = "P009_empty.nrrd"
    table.reset_index().to_csv(manifest, index=False)
    return SimpleNamespace(manifest=manifest, broken=broken, hollow=hollow)


def test_the_study_leaves_out_bad_patients_and_judges_recommendations(tiny_cohort):
    from rtresponse.cohort import load_manifest

    cohort = load_manifest(tiny_cohort.manifest)
    result = run_study(cohort, ClassifierConfig(**{**SMALL, "epochs": 1}), counterfactual=COUNTERFACTUAL)
    assert set(result.failures) == {tiny_cohort.broken, tiny_cohort.hollow}
    assert result.failures[tiny_cohort.hollow] == "patient P009: tumour mask is empty"
    assert result.failures[tiny_cohort.broken].startswith("patient P005, column image_T1")
    tested = result.predictions
    assert set(tested["patient_id"]) == set(result.split.index[(result.split["split"] == "test")
                                                               & (result.split["status"] == "ok")])
    assert set(result.metrics["population"]) == {"received", "all (counterfactual)"}
    assert set(result.metrics["unit"]) == {"image", "patient"} and set(result.metrics["model"]) == {"CCRT", "IC+CCRT"}
    assert result.situations["cases"].sum() == len(tested)
    judged = result.summary
    assert sum(judged.model.values()) == sum(judged.physician.values()) == len(tested)
    assert list(tested["recommendation"]) == [recommend(a, b) for a, b in
                                              zip(tested["residual_CCRT"], tested["residual_IC_CCRT"])]


def test_command_line_train_predict_recommend(tiny_cohort, tmp_path, capsys):
    import json

    from rtresponse.cli import main

    out = tmp_path / "run"
    code = main(["residual", "train", "--manifest", str(tiny_cohort.manifest), "--network", "resnet50",
                 "--weights", "random", "--epochs", "1", "--input-size", "64", "--device", "cpu",
                 "--counterfactual", "residual_CCRT", "residual_IC_CCRT", "--out", str(out)])
    assert code == 0
    for name in ("split.csv", "ccrt.pt", "ic_ccrt.pt", "metrics.csv", "test_predictions.csv", "model_card.json",
                 "situations.csv", "history.csv"):
        assert (out / name).is_file(), name
    card = json.loads((out / "model_card.json").read_text())
    assert card["network"] == "resnet50" and set(card["left_out"]) == {tiny_cohort.broken, tiny_cohort.hollow}
    # traceable: random weights with their seed (never null), the class the probability is of, the epoch kept
    assert card["weights"] == {"weights": "random", "seed": 0} and card["settings"]["weights"] == "random"
    assert card["positive_class"] == "residual tumour (residual = 1)"
    for regimen, model in card["models"].items():
        assert model["epoch"] == 1 and model["keep"] == "best" and model["validation_patients"] >= 1, regimen
        assert len(model["training_data_sha256"]) == 64 and model["validation_loss"] > 0
    assert json.loads((out / "provenance.json").read_text())["weights"] == {"weights": "random", "seed": 0}
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 1 * 2 * 2 * 2  # network x regimen model x population x unit
    assert (metrics["epoch"] == 1).all() and metrics["validation_loss"].notna().all()
    split = pd.read_csv(out / "split.csv", dtype=str)
    assert split["patient_id"].is_unique and set(split["split"]) == {"train", "validation", "test"}
    assert (pd.read_csv(out / "test_predictions.csv")["positive_class"] == card["positive_class"]).all()

    predictions = tmp_path / "predictions.csv"
    test_ids = list(split.loc[(split["split"] == "test") & (split["status"] == "ok"), "patient_id"])
    code = main(["residual", "predict", "--ccrt", str(out / "ccrt.pt"), "--ic-ccrt", str(out / "ic_ccrt.pt"),
                 "--manifest", str(tiny_cohort.manifest), "--patients", test_ids[0], tiny_cohort.hollow,
                 "--gradcam", str(tmp_path / "cams"), "--device", "cpu", "--out", str(predictions)])
    assert code == 0
    table = pd.read_csv(predictions, dtype={"patient_id": str}).set_index("patient_id")
    assert table.at[test_ids[0], "status"] == "ok" and 0 <= table.at[test_ids[0], "p_residual_CCRT"] <= 1
    assert table.at[test_ids[0], "positive_class"] == "residual tumour (residual = 1)"
    from rtresponse import provenance

    noted = provenance.read(predictions)  # predictions.csv.json: which model files, by SHA-256
    saved = provenance.sha256_file(out / "ccrt.pt")
    assert noted["model"]["ccrt"]["sha256"] == card["models"]["CCRT"]["sha256"] == saved
    assert noted["positive_class"] == card["positive_class"]
    assert "tumour mask is empty" in table.at[tiny_cohort.hollow, "status"]
    assert (tmp_path / "cams" / f"{test_ids[0]}_gradcam_IC_CCRT.nrrd").is_file()

    code = main(["residual", "recommend", "--predictions", str(out / "test_predictions.csv"), "--manifest",
                 str(tiny_cohort.manifest), "--split", str(out / "split.csv"), "--out", str(tmp_path / "judged")])
    assert code == 0
    situations = pd.read_csv(tmp_path / "judged" / "situations.csv")
    assert situations["cases"].sum() == len(test_ids)
    assert "model correct" in capsys.readouterr().out

    one = tiny_cohort.manifest.parent / test_ids[0]
    code = main(["residual", "segmenter", "--manifest", str(tiny_cohort.manifest), "--mask", "GTVp+GTVn",
                 "--architectures", "unet", "--weights", "random", "--epochs", "1", "--batch-size", "8",
                 "--input-size", "48", "--unet-features", "4", "4", "8", "8", "16", "4", "--device", "cpu",
                 "--out", str(tmp_path / "seg")])
    assert code == 0 and (tmp_path / "seg" / "segmenter.pt").is_file()
    assert provenance.read(tmp_path / "seg")["weights"] == {"weights": "random", "seed": 0}
    assert "left out patient P005, column image_T1" in capsys.readouterr().err  # P009 still has its nodes
    code = main(["residual", "predict", "--ccrt", str(out / "ccrt.pt"), "--ic-ccrt", str(out / "ic_ccrt.pt"),
                 "--image-file", str(one / "T1.nrrd"), "--mask-file", str(one / "GTV.seg.nrrd"), "--mask", "GTVp",
                 "--patient-id", test_ids[0], "--device", "cpu", "--out", str(tmp_path / "one.csv")])
    assert code == 0 and pd.read_csv(tmp_path / "one.csv")["status"].tolist() == ["ok"]
    printed = capsys.readouterr().out
    assert "The CCRT model predicts" in printed
    one_row = pd.read_csv(tmp_path / "one.csv").iloc[0]
    assert one_row["p_residual_CCRT"] == pytest.approx(table.at[test_ids[0], "p_residual_CCRT"], abs=1e-6)
    code = main(["residual", "predict", "--ccrt", str(out / "ccrt.pt"), "--ic-ccrt", str(out / "ic_ccrt.pt"),
                 "--image-file", str(one / "T1.nrrd"), "--segmenter", str(tmp_path / "seg" / "segmenter.pt"),
                 "--device", "cpu", "--out", str(tmp_path / "segmented.csv")])
    status = pd.read_csv(tmp_path / "segmented.csv")["status"].iloc[0]  # 1 epoch: a tumour, or a clear message
    assert code == 0 and (status == "ok" or "segmenter found no tumour" in status or "no axial slice" in status)

    assert main(["residual", "train", "--manifest", str(tiny_cohort.manifest), "--network", "resnet50",
                 "--epochs", "1", "--input-size", "64", "--device", "cpu", "--out", str(tmp_path / "no")]) == 2
    assert "ImageNet weights for 'resnet50' are not on this computer" in capsys.readouterr().err


def test_the_model_card_names_a_weights_file_by_its_sha256(tiny_cohort, tmp_path):
    import json

    import torchvision

    from rtresponse import provenance
    from rtresponse.cli import main

    weights = tmp_path / "squeezenet_start.pth"  # stands in for an ImageNet file (none on the test machines)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    out = tmp_path / "run"
    assert main(["residual", "train", "--manifest", str(tiny_cohort.manifest), "--network", "squeezenet",
                 "--weights", str(weights), "--epochs", "1", "--input-size", "32", "--keep", "last", "--device", "cpu",
                 "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    expected = {"weights": "file", "file": str(weights), "sha256": provenance.sha256_file(weights)}
    assert card["weights"] == expected and provenance.read(out)["weights"] == expected
    assert {model["validation_patients"] for model in card["models"].values()} == {0}  # --keep last: the paper
    assert card["epoch_kept"] == "the last (the paper)"
