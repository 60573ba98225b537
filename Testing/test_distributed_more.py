"""The rest of the cohort work on a real dask.distributed LocalCluster (2 single-threaded worker processes): deep 2D
and I3D features, labels, recurrence and residual prediction and the split protocol give exactly what one process
gives, a failing patient keeps its row, and provenance says where the run went."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import cohort_with_empty_mask, needs_dask, planted_evaluation_inputs

pytestmark = needs_dask


@pytest.fixture(scope="module")
def cohort(synthetic_cohort, tmp_path_factory):
    """The synthetic cohort (6 patients) with P002's GTVp file emptied (no segment left): its rows say so."""
    return cohort_with_empty_mask(synthetic_cohort,
                                  tmp_path_factory.mktemp("distributed_more") / "cohort",
                                  "P002", "GTVp")


def _where(table) -> dict:
    return table.attrs["provenance"]["execution"]


# ------------------------------------------------------------------ deep 2D features

DEEP = dict(image="CT", mask="GTVp", model="resnet18", weights=None, device="cpu", batch_size=2, seed=0)


def test_deep2d_features_on_the_cluster_equal_one_process(client, cohort):
    pytest.importorskip("timm")
    from rtresponse.features.deep2d import extract_cohort

    one = extract_cohort(cohort, **DEEP)
    reported = []
    spread = extract_cohort(cohort, **DEEP, execution=client,
                            progress=lambda done, total: reported.append((done, total)))
    pd.testing.assert_frame_equal(one, spread)  # exactly: the same chunks, one torch thread per task everywhere
    pd.testing.assert_frame_equal(one.attrs["zscore"], spread.attrs["zscore"])
    assert one.at["P002", "status"].startswith("patient P002")  # isolated, as in one process
    assert (one.drop(index="P002")["status"] == "ok").all()
    assert reported[-1] == (6, 6) and len(reported) == 3  # 3 tasks of 2 patients
    assert _where(one) == {"kind": "local", "workers": 1} and _where(spread)["kind"] == "dask"
    assert one.attrs["provenance"]["tasks"] == {"patients_per_task": 2, "torch_threads": 1}



def test_gradcam_maps_on_the_cluster_equal_one_process(client, cohort):
    pytest.importorskip("monai")
    pytest.importorskip("timm")
    import SimpleITK as sitk

    from rtresponse.features.deep2d import gradcam_cohort

    options = dict(image="CT", mask="GTVp", model="resnet18", weights=None, device="cpu")
    one = [(pid, None if heat is None else sitk.GetArrayFromImage(heat), status)
           for pid, heat, status in gradcam_cohort(cohort, **options)]
    seen, reported = [], []
    spread = [(pid, None if heat is None else sitk.GetArrayFromImage(heat), status)
              for pid, heat, status in gradcam_cohort(cohort, **options, execution=client,
                                                      progress=lambda d, t: reported.append(d),
                                                      on_map=lambda pid, ct, crop, values: seen.append(pid))]
    assert [(pid, status) for pid, _, status in one] == [(pid, status) for pid, _, status in spread]
    assert [pid for pid, _, status in one if status != "ok"] == ["P002"]
    for (_, mine, _), (_, theirs, _) in zip(one, spread):
        if mine is not None:
            assert mine.max() > 0
            np.testing.assert_array_equal(mine, theirs)  # exactly: one torch thread per task everywhere
    assert reported == list(range(0, 7)) and seen == [pid for pid, _, status in one if status == "ok"]

# ------------------------------------------------------------------ I3D features

def test_i3d_features_on_the_cluster_equal_one_process(client, cohort):
    pytest.importorskip("torch")
    from rtresponse.models.i3d.features import cohort_features
    from rtresponse.models.i3d.preprocess import VolumeConfig

    small = VolumeConfig(shape_xyz=(32, 32, 8), spacing_xyz=(2.0, 2.0, 3.0), margin_mm=4.0)
    options = dict(weights=None, augment_copies=1, seed=0)
    one = cohort_features(cohort, small, **options)
    reported = []
    spread = cohort_features(cohort, small, **options, execution=client, progress=lambda d, t: reported.append((d, t)))
    assert spread.patient_ids == one.patient_ids and list(spread.copies) == list(one.copies) == [0, 1] * 5
    np.testing.assert_array_equal(spread.values, one.values)  # exactly, augmented copies included
    assert list(one.failures) == list(spread.failures) == ["P002"]
    assert reported == [(done, 6) for done in range(1, 7)]  # one task per patient
    assert one.execution == {"kind": "local", "workers": 1} and spread.execution["kind"] == "dask"


# ------------------------------------------------------------------ regression labels

def test_labels_on_the_cluster_equal_one_process_also_from_the_command_line(client, cohort, tmp_path):
    from rtresponse.cli import main
    from rtresponse.labels import label_cohort

    one = label_cohort(cohort)
    reported = []
    spread = label_cohort(cohort, execution=client, progress=lambda d, t: reported.append(d))
    pd.testing.assert_frame_equal(one, spread)
    assert one.attrs["threshold"] == spread.attrs["threshold"]
    assert one.at["P002", "status"] != "ok" and (one.drop(index="P002")["status"] == "ok").all()
    assert reported == list(range(1, 7)) and _where(spread)["kind"] == "dask"
    common = ["labels", "--manifest", str(cohort.path), "--progress", "none"]
    assert main(common + ["--out", str(tmp_path / "here.csv")]) == 0
    assert main(common + ["--scheduler", client.scheduler.address, "--out", str(tmp_path / "there.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "here.csv"), pd.read_csv(tmp_path / "there.csv"))


# ------------------------------------------------------------------ recurrence and residual prediction

def _same_results(one: list, other: list) -> None:
    assert [r["patient_id"] for r in one] == [r["patient_id"] for r in other]
    for mine, theirs in zip(one, other):
        assert mine.keys() == theirs.keys() and mine["problem"] == theirs["problem"]
        for key, value in mine.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, theirs[key])
            else:
                assert value == theirs[key], key


def test_recurrence_maps_on_the_cluster_equal_one_process(client, cohort, tmp_path):
    pytest.importorskip("monai")
    from rtresponse.recurrence import TrainingConfig, make_unet, save_model
    from rtresponse.recurrence.study import predict_cohort

    channels = (8, 8, 16, 32, 64, 8)
    model = save_model(tmp_path / "model.pt", make_unet(channels, seed=0),
                       {**TrainingConfig(channels=channels).to_dict(), "box_xyz": [32, 32, 16]})
    one, here = predict_cohort(cohort, model, box_xyz=(32, 32, 16))
    reported = []
    spread, there = predict_cohort(cohort, model, box_xyz=(32, 32, 16), execution=client,
                                   progress=lambda d, t: reported.append(d))
    _same_results(one, spread)
    assert [r["patient_id"] for r in one if r["problem"]] == ["P002"]  # isolated, the others have maps
    assert one[0]["probability"].shape == (16, 32, 32) and reported == list(range(1, 7))
    assert here == {"kind": "local", "workers": 1} and there["kind"] == "dask"


def test_residual_predictions_on_the_cluster_equal_one_process(client, cohort, tmp_path):
    pytest.importorskip("torch")
    from rtresponse.residual import Classifier, ClassifierConfig, make_classifier, save_classifier
    from rtresponse.residual.predict import predict_cohort

    files = {}
    for regimen, seed in (("CCRT", 1), ("IC+CCRT", 2)):  # random-weight SqueezeNets on 32 px crops
        config = ClassifierConfig(network="squeezenet", weights=None, input_size=32, regimen=regimen, seed=seed)
        files[regimen] = save_classifier(tmp_path / f"{seed}.pt", Classifier(make_classifier("squeezenet", weights=None,
                                                                                             seed=seed), config))
    options = dict(image="T1", mask="GTVp", gradcam=True, keep_mask=True)
    one, here = predict_cohort(cohort, files["CCRT"], files["IC+CCRT"], **options)
    spread, there = predict_cohort(cohort, files["CCRT"], files["IC+CCRT"], **options, execution=client)
    assert [(pid, problem) for pid, _, problem in one] == [(pid, problem) for pid, _, problem in spread]
    assert [pid for pid, _, problem in one if problem] == ["P002"]  # isolated, the others predicted
    for (pid, mine, _), (_, theirs, _) in zip(one, spread):
        if mine is None:
            continue
        assert mine.as_row() == theirs.as_row() and mine.reasoning == theirs.reasoning
        pd.testing.assert_frame_equal(mine.slices, theirs.slices)
        for regimen, image in mine.gradcam.items():
            np.testing.assert_array_equal(sitk_array(image), sitk_array(theirs.gradcam[regimen]))
        np.testing.assert_array_equal(sitk_array(mine.mask), sitk_array(theirs.mask))
    assert here == {"kind": "local", "workers": 1} and there["kind"] == "dask"


def sitk_array(image):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image)


# ------------------------------------------------------------------ the split protocol

def test_the_split_protocol_on_the_cluster_equals_one_process(client):
    from rtresponse.models.split_protocol import split_protocol

    rng = np.random.default_rng(0)
    ids = pd.Index([f"P{i:03d}" for i in range(45)], name="patient_id")
    X = pd.DataFrame(rng.normal(size=(45, 8)), columns=[f"f{i}" for i in range(8)], index=ids)
    X.iloc[3, 5] = np.nan
    y = (X["f3"] - X["f6"] + rng.normal(0, 0.6, 45) > 0).astype(int).to_numpy()
    sets = {"first": X[["f0", "f1", "f2", "f3"]], "second": X[["f4", "f5", "f6", "f7"]]}
    options = dict(selectors=("wilcoxon", "chi2"), classifiers=("lda", "nb"), k=2, folds=3)
    one = split_protocol(sets, y, **options)
    reported = []
    spread = split_protocol(sets, y, **options, execution=client, progress=lambda d, t: reported.append((d, t)))
    pd.testing.assert_frame_equal(one.results, spread.results)
    pd.testing.assert_frame_equal(one.comparisons, spread.comparisons)
    assert (one.best_set, one.train_ids, one.test_ids) == (spread.best_set, spread.train_ids, spread.test_ids)
    for name, result in one.chosen.items():
        np.testing.assert_array_equal(result.test_scores, spread.chosen[name].test_scores)
    assert reported == [(0, 8), (2, 8), (4, 8), (6, 8), (8, 8)]  # 4 tasks of 2 classifiers
    assert one.execution == {"kind": "local", "workers": 1} and spread.execution["kind"] == "dask"


def test_evaluate_split_sent_to_a_scheduler_address_writes_the_same_results(client, tmp_path):
    from rtresponse import provenance
    from rtresponse.cli import main

    planted_evaluation_inputs(tmp_path, 45)
    common = ["evaluate", "--features", str(tmp_path / "features.csv"), "--manifest", str(tmp_path / "manifest.csv"),
              "--outcome", "response", "--protocol", "split", "--selectors", "wilcoxon", "chi2", "--classifiers",
              "lda", "nb", "--k", "3", "--cv-folds", "3", "--progress", "none"]
    assert main(common + ["--out", str(tmp_path / "here")]) == 0
    assert main(common + ["--scheduler", client.scheduler.address, "--out", str(tmp_path / "there")]) == 0
    for name in ("results.csv", "comparisons.csv", "split.csv"):
        if (tmp_path / "here" / name).exists():
            pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "here" / name), pd.read_csv(tmp_path / "there" / name))
    assert provenance.read(tmp_path / "there")["execution"]["kind"] == "dask"
    assert provenance.read(tmp_path / "here")["execution"] == {"kind": "local", "workers": 1}
