"""Recurrence volumes (Kutnár et al.): preprocessing geometry, baselines, and a U-Net that learns a planted relapse."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from conftest import check_margin  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.recurrence.preprocess import pet_on_ct  # noqa: E402
from rtresponse.recurrence import (Crop, TrainingConfig, load_model, make_unet, mean_dice, predict_boxes,  # noqa: E402
                                   prediction_to_image, prepare, prepare_patient, save_model, suvmax_threshold,
                                   sweep_fraction, train)

PLANTED_FRACTION = 0.42
SMALL_BOX = (32, 32, 16)  # x, y, z

pytestmark = pytest.mark.usefixtures("torch_reproducible")  # seed 0, one thread, deterministic (conftest)


def planted_patient(seed: int, shape=(20, 40, 40)):
    """CT, PET (coarser grid), GTV and relapse images: the relapse is where the PET, as seen on the CT grid,
    is at least 42 % of its maximum in the GTV."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2 + rng.uniform(-3, 3, 3)
    gtv = ((z - centre[0]) / 6) ** 2 + ((y - centre[1]) / 9) ** 2 + ((x - centre[2]) / 9) ** 2 <= 1
    hot = centre + rng.uniform(-3, 3, 3) * [0.5, 1, 1]
    suv = 1.0 + 9.0 * np.exp(-(((z - hot[0]) / 2.5) ** 2 + ((y - hot[1]) / 4) ** 2 + ((x - hot[2]) / 4) ** 2))
    ct = np.where(gtv, 45.0, 20.0) + rng.normal(0, 15, shape)

    def image(array, pixel=np.float32):
        out = sitk.GetImageFromArray(array.astype(pixel))
        out.SetSpacing((1.5, 1.5, 3.0))
        out.SetOrigin((-30.0, 10.0, 5.0))
        return out

    ct_image, suv_image = image(ct), image(suv)
    pet = sitk.Resample(suv_image, [20, 20, 15], sitk.Transform(), sitk.sitkLinear, (-29.25, 10.75, 6.0),
                        (3.0, 3.0, 4.0), suv_image.GetDirection(), 0.0, sitk.sitkFloat32)
    seen = sitk.GetArrayFromImage(pet_on_ct(pet, ct_image))
    relapse = seen >= PLANTED_FRACTION * seen[gtv].max()
    return ct_image, pet, image(gtv, np.uint8), image(relapse, np.uint8)


def test_crop_extracts_and_pastes_back_with_overhang():
    grid = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    crop = Crop((-2, 3, 1), (4, 5, 4), grid.shape)
    box = crop.extract(grid, fill=-1)
    assert box.shape == (4, 5, 4) and box[0, 0, 0] == -1 and box[2, 0, 0] == grid[0, 3, 1]
    back = crop.paste(box, fill=-1)
    inside = back != -1
    np.testing.assert_array_equal(back[inside], grid[inside])
    assert inside.sum() == 2 * 3 * 4  # z -2..1, y 3..7, x 1..4 on a 5 x 6 x 7 grid


def test_prepare_normalises_and_the_map_goes_back_onto_the_ct_exactly():
    import SimpleITK as sitk

    ct, pet, gtv, relapse = planted_patient(0)
    sample = prepare(ct, pet, gtv, relapse, box_xyz=(48, 48, 24), patient_id="P")  # larger than the CT: padded
    assert sample.image.shape == (2, 24, 48, 48) and sample.image.dtype == np.float32
    assert sample.image[0].min() >= -1 and sample.image[0].max() <= 1
    inside = sample.crop.extract(np.ones(sitk.GetArrayFromImage(ct).shape, bool), False)
    assert not inside.all() and np.all(sample.image[0][~inside] == -1)  # padding is air
    np.testing.assert_allclose(sample.image[1][inside].mean(), 0, atol=0.35)  # z-scored over the whole PET
    probability = np.random.default_rng(0).random(sample.image.shape[1:]).astype(np.float32)
    mapped = prediction_to_image(probability, sample, ct)
    assert mapped.GetSize() == ct.GetSize() and mapped.GetSpacing() == ct.GetSpacing()
    assert mapped.GetOrigin() == ct.GetOrigin() and mapped.GetDirection() == ct.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mapped), sample.crop.paste(probability))
    np.testing.assert_array_equal(sample.crop.paste(sample.label), sitk.GetArrayFromImage(relapse) != 0)


def test_synthetic_cohort_patients_are_prepared_at_the_papers_box(synthetic_cohort):
    import SimpleITK as sitk

    from rtresponse.cohort import load_manifest

    cohort = load_manifest(synthetic_cohort)
    recurring = [pid for pid in cohort.patient_ids if cohort.patient(pid).masks.get("relapse")]
    quiet = [pid for pid in cohort.patient_ids if not cohort.patient(pid).masks.get("relapse")]
    for pid in (recurring + quiet)[:1] + quiet[:1]:
        sample = prepare_patient(cohort, pid)
        assert sample.image.shape == (2, 128, 224, 160)
        assert sample.label.any() == (pid in recurring)
        whole_gtv = sitk.GetArrayFromImage(cohort.read_mask(pid, "GTVp", image="CT")).sum()
        assert sample.gtv.sum() == whole_gtv  # the paper's box holds the whole GTV


def test_suvmax_threshold_and_the_sweep_recover_the_planted_fraction():
    import SimpleITK as sitk

    cases = []
    for seed in range(3):
        ct, pet, gtv, relapse = planted_patient(seed)
        sample = prepare(ct, pet, gtv, relapse, box_xyz=SMALL_BOX)
        cases.append((sample.pet_suv, sample.gtv, sample.label, None))
    best, curve = sweep_fraction(cases)
    assert len(curve) == 100 and best == pytest.approx(PLANTED_FRACTION, abs=0.011)
    assert curve["mean_dice"].max() > 0.95
    pet, gtv, relapse, _ = cases[0]
    brain = np.zeros_like(gtv)
    brain[:, :, :4] = True
    predicted = suvmax_threshold(pet, gtv, best, brain=brain)
    assert predicted.dtype == bool and not predicted[brain].any()
    image = suvmax_threshold(sitk.GetImageFromArray(pet), sitk.GetImageFromArray(gtv.astype(np.uint8)), 0.5)
    assert isinstance(image, sitk.Image) and sitk.GetArrayFromImage(image).sum() == (pet >= 0.5 * pet[gtv].max()).sum()
    with pytest.raises(InputError, match="fraction"):
        suvmax_threshold(pet, gtv, 0)
    with pytest.raises(InputError, match="empty"):
        suvmax_threshold(pet, np.zeros_like(gtv), 0.4)


def small_samples(seeds, permute_labels=False):
    samples = []
    for seed in seeds:
        ct, pet, gtv, relapse = planted_patient(seed)
        samples.append(prepare(ct, pet, gtv, relapse, box_xyz=SMALL_BOX, patient_id=f"S{seed}"))
    if permute_labels:  # each patient gets another patient's relapse: nothing left to learn from the image
        labels = [s.label for s in samples]
        for sample, label in zip(samples, labels[1:] + labels[:1]):
            sample.label = np.roll(label, 7, axis=(1, 2))
    return samples


QUICK = dict(learning_rate=1e-2, max_epochs=35, runs=1, batch_size=2, channels=(8, 8, 16, 32, 64, 8), lr_patience=10,
             early_stopping_patience=25)


def test_a_short_cpu_training_learns_the_planted_relapse(tmp_path):
    train_set, validation_set = small_samples(range(10, 18)), small_samples(range(30, 34))
    result = train(train_set, validation_set, TrainingConfig(**QUICK), device="cpu")
    check_margin("validation Dice", result.best_validation_dice, 0.5)  # the empty prediction scores 0
    assert result.history and {"train_loss", "validation_dice", "lr"} <= set(result.history[0])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    dices = [record["validation_dice"] for record in result.history]  # the kept weights: the best epoch, not the last
    kept = result.history[int(np.argmax(dices))]
    assert result.best_validation_dice == max(dices) and (result.best_run, result.best_epoch) == (kept["run"],
                                                                                                 kept["epoch"])
    path = save_model(tmp_path / "model.pt", result.network, TrainingConfig(**QUICK).to_dict())
    loaded, config = load_model(path)
    assert config["channels"] == [8, 8, 16, 32, 64, 8]
    assert mean_dice(loaded, validation_set, "cpu") == pytest.approx(result.best_validation_dice)
    sliding = predict_boxes(loaded, validation_set[:1], roi_size=(16, 32, 16))[0]  # windows smaller than the box
    assert sliding.shape == validation_set[0].label.shape and 0 <= sliding.min() and sliding.max() <= 1


def test_permuted_relapses_are_not_learned():
    train_set = small_samples(range(10, 18), permute_labels=True)
    validation_set = small_samples(range(30, 34))
    result = train(train_set, validation_set, TrainingConfig(**QUICK), device="cpu")
    check_margin("validation Dice, permuted relapses", result.best_validation_dice, 0.35, above=False)


def test_fine_tuning_starts_from_the_given_state_and_bad_files_are_refused(tmp_path):
    train_set, validation_set = small_samples([1, 2]), small_samples([3])
    start = make_unet((8, 8, 16, 32, 64, 8), seed=123).state_dict()
    config = TrainingConfig(**dict(QUICK, max_epochs=1, learning_rate=1e-12))
    result = train(train_set, validation_set, config, initial_state=start)
    for key, value in result.network.state_dict().items():
        torch.testing.assert_close(value, start[key], atol=1e-6, rtol=0)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read the model"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="no relapse mask"):
        train([train_set[0].__class__(**{**train_set[0].__dict__, "label": None})], validation_set, config)


def test_scene_outputs_have_the_ct_geometry_even_when_the_box_is_padded(scene):
    from rtresponse import mrml
    from rtresponse.recurrence.nodes import PREDICTED, predict_in_scene, set_threshold

    ct, pet, gtv, relapse = planted_patient(5)
    ct_node = mrml.image_to_volume_node(ct, "CT", scene=scene)
    pet_node = mrml.image_to_volume_node(pet, "PET", scene=scene)
    segmentation = mrml.new_segmentation_node("contours", ct_node, scene=scene)
    gtv_id = mrml.mask_to_segment(gtv, segmentation, "GTVp", ct_node)
    relapse_id = mrml.mask_to_segment(relapse, segmentation, "relapse", ct_node)
    nodes_before = scene.GetNumberOfNodes()
    network = make_unet((8, 8, 16, 32, 64, 8), seed=0)
    nodes = predict_in_scene(ct_node, pet_node, segmentation, gtv_id, network, threshold=0.5,
                             relapse_segmentation=segmentation, relapse_segment=relapse_id,
                             box_xyz=(48, 64, 32), scene=scene)  # larger than the 40 x 40 x 20 CT: padded
    assert scene.GetNumberOfNodes() > nodes_before and mrml.segment_names(segmentation).keys() == {gtv_id, relapse_id}
    assert nodes.probability.GetImageData().GetDimensions() == ct_node.GetImageData().GetDimensions()
    np.testing.assert_allclose(nodes.probability.GetSpacing(), ct_node.GetSpacing())
    np.testing.assert_allclose(nodes.probability.GetOrigin(), ct_node.GetOrigin())
    probability = mrml.volume_node_to_image(nodes.probability)
    import SimpleITK as sitk

    values = sitk.GetArrayFromImage(probability)
    assert 0 <= values.min() and values.max() <= 1
    low = set_threshold(nodes, ct_node, 0.2)
    predicted = sitk.GetArrayFromImage(mrml.segment_to_mask(nodes.segmentation, low, ct_node))
    np.testing.assert_array_equal(predicted != 0, values >= 0.2)
    assert len(mrml.segment_names(nodes.segmentation)) == 3  # predicted (replaced), SUVmax, GTV
    table = mrml.table_node_to_dataframe(nodes.metrics)
    assert list(table.index) == ["CNN", "SUVmax 38%", "GTV"] and table.loc["GTV", "origins_total"] == 1
    assert PREDICTED in nodes.segment_ids


def test_split_is_seeded_and_by_patient():
    from rtresponse.recurrence.study import split_patients

    ids = [f"P{i:02d}" for i in range(37)]  # the paper's 37 patients: 23 / 7 / 7
    split = split_patients(ids, seed=1)
    assert [len(split[p]) for p in ("train", "validation", "test")] == [23, 7, 7]
    assert sorted(sum(split.values(), [])) == ids and split == split_patients(ids, seed=1)
    assert split != split_patients(ids, seed=2)
    with pytest.raises(InputError, match="at least 3"):
        split_patients(ids[:2])


def test_cli_train_evaluate_predict(tmp_path, capsys):
    import pandas as pd

    from rtresponse.cli import main
    from rtresponse.sampledata.synthetic import write_cohort

    manifest = write_cohort(tmp_path / "cohort", n_patients=14, seed=0)  # enough recurring patients for 3 parts
    common = ["--manifest", str(manifest), "--box", "32", "32", "16", "--device", "cpu"]
    model = tmp_path / "model"
    assert main(["recurrence", "train", *common, "--epochs", "1", "--runs", "1", "--lr", "0.01", "--out", str(model)]) == 0
    split = pd.read_csv(model / "split.csv")
    assert set(split["split"]) == {"train", "validation", "test"}
    assert {"model.pt", "history.csv", "model_card.json"} <= {p.name for p in model.iterdir()}
    import json

    from rtresponse import provenance

    card = json.loads((model / "model_card.json").read_text())  # He weights seeded by seed + run, never null
    assert card["weights"] == {"weights": "random", "seed": 0} == provenance.read(model)["weights"]
    assert card["positive_class"] == "voxel inside mask_relapse" and len(card["training_data"]["sha256"]) == 64
    assert pd.read_csv(model / "history.csv")["kept"].tolist() == [True]  # one run, one epoch
    evaluation = tmp_path / "evaluation"
    assert main(["recurrence", "evaluate", *common, "--split", str(model / "split.csv"), "--model",
                 str(model / "model.pt"), "--out", str(evaluation)]) == 0
    cases = pd.read_csv(evaluation / "cases.csv")
    assert set(cases["method"]) == {"CNN", "SUVmax threshold", "GTV contour"}
    assert set(cases["patient_id"]) == set(split.loc[split["split"] == "test", "patient_id"])
    assert (evaluation / "suvmax_sweep.csv").exists() and (evaluation / "summary.csv").exists()
    first = split["patient_id"].iloc[0]
    assert main(["recurrence", "predict", "--manifest", str(manifest), "--model", str(model / "model.pt"),
                 "--patients", first, "--device", "cpu", "--out", str(tmp_path / "maps")]) == 0
    assert (tmp_path / "maps" / f"{first}_probability.nrrd").exists()
    noted = provenance.read(tmp_path / "maps")
    assert noted["model"]["sha256"] == provenance.sha256_file(model / "model.pt")
    assert noted["positive_class"] == "voxel inside mask_relapse"
    assert main(["recurrence", "evaluate", *common, "--model", str(tmp_path / "none.pt"), "--out", str(evaluation)]) == 2
    assert "model file not found" in capsys.readouterr().err
    tuned = tmp_path / "tuned"  # fine-tuning without --box keeps the initial model's box (not the paper's)
    assert main(["recurrence", "train", "--manifest", str(manifest), "--device", "cpu", "--init", str(model / "model.pt"),
                 "--epochs", "1", "--runs", "1", "--lr", "0.01", "--out", str(tuned)]) == 0
    tuned_card = json.loads((tuned / "model_card.json").read_text())
    assert tuned_card["settings"]["box_xyz"] == [32, 32, 16]
    assert tuned_card["weights"] == {"weights": "file", "file": str(model / "model.pt"), "name": "fine-tuned from",
                                     "sha256": provenance.sha256_file(model / "model.pt")}
    assert "box 32 x 32 x 16 voxels (the initial model)" in capsys.readouterr().err
