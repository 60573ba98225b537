"""Deep-feature radiomics (Tanaka et al.): the network zoo, weights rules, extraction, cohort, Grad-CAM."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from rtresponse.errors import InputError  # noqa: E402
from rtresponse.features import deep2d  # noqa: E402
from rtresponse.imaging import tumour_slices  # noqa: E402

PAPER_NETWORKS = {"SqueezeNet", "GoogLeNet", "Inception-v3", "DenseNet-201", "MobileNet-v2", "ResNet-18", "ResNet-50",
                  "ResNet-101", "Xception", "Inception-ResNet-v2", "ShuffleNet", "NASNet-Mobile", "NASNet-Large",
                  "DarkNet-19", "DarkNet-53", "AlexNet"}


pytestmark = pytest.mark.usefixtures("fresh_deep2d_networks")  # weights never from the user's caches (conftest)


def tumour_volume():
    """A small SimpleITK CT (anisotropic) with a textured GTV whose largest slice is index 6."""
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    ct = np.full((12, 110, 120), -600, np.float32)
    mask = np.zeros(ct.shape, np.uint8)
    rows, cols = np.ogrid[:110, :120]
    for z in range(3, 10):
        mask[z] = (rows - 55) ** 2 + (cols - 62) ** 2 <= (16 - 2 * abs(z - 6)) ** 2
    ct[mask > 0] = rng.normal(40, 60, int(mask.sum()))
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((0.9, 0.9, 2.5))
    image.SetOrigin((-40.0, 12.5, 101.0))
    gtv = sitk.GetImageFromArray(mask)
    gtv.CopyInformation(image)
    return image, gtv


def test_zoo_covers_the_papers_sixteen_networks_and_marks_substitutes():
    tanaka = [spec for spec in deep2d.MODELS.values() if "000_tanaka" in spec.extra.get("papers", ())]
    assert len(tanaka) == 16
    assert {spec.paper_name for spec in tanaka} == PAPER_NETWORKS
    # the NPC residual-tumour paper's four classifiers; efficientnet_b0 is the one not among the 16
    npc = {spec.name for spec in deep2d.MODELS.values() if "002_npc_residual" in spec.extra.get("papers", ())}
    assert npc == {"efficientnet_b0", "inception_resnet_v2", "resnet50", "xception"}
    # and EfficientNet-Lite0, in no paper: the ImageNet network whose weights install offline (test_imagenet_weights)
    assert set(deep2d.MODELS) == {spec.name for spec in tanaka} | npc | {"efficientnet_lite0"}
    for spec in deep2d.MODELS.values():
        assert spec.library in ("timm", "torchvision")
        assert spec.input_size >= 224 and len(spec.mean) == len(spec.std) == 3
        assert spec.feature_layer and spec.cam_layer and spec.licence
        if spec.substitute_for:
            assert spec.substitute_for == spec.paper_name and "nearest" in spec.substitute_note
    substitutes = {spec.paper_name for spec in deep2d.MODELS.values() if spec.substitute_for}
    assert substitutes == {"ShuffleNet", "NASNet-Mobile", "DarkNet-19"}
    with pytest.raises(InputError, match="unknown network 'vgg16'.*resnet50"):
        deep2d.model_spec("vgg16")


@pytest.mark.parametrize("name", list(deep2d.MODELS))
def test_every_network_builds_with_random_weights_and_gives_1000_finite_features(name):
    spec = deep2d.MODELS[name]
    network = deep2d.build(name, weights=None, seed=0)
    assert not any(p.requires_grad for p in network.parameters())  # frozen
    assert spec.cam_layer in dict(network.named_modules())
    x = torch.rand(1, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        out = network(x)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def _outputs(network, spec):
    x = deep2d.to_input([np.linspace(0, 1, 100 * 100).reshape(100, 100)], spec)
    with torch.inference_mode():
        return network(x).numpy()


@pytest.mark.parametrize("name,suffix", [("resnet18", ".pth"), ("mnasnet", ".safetensors"), ("densenet201", ".pth")])
def test_a_weights_file_loads_and_changes_the_output(tmp_path, name, suffix):
    spec = deep2d.MODELS[name]
    reference = deep2d.build(name, weights=None, seed=0)
    trained = deep2d.build(name, weights=None, seed=1)
    with torch.no_grad():  # move every weight, so the saved file differs from seed 0 everywhere
        for parameter in trained.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(trained.state_dict(), str(path))
    else:
        torch.save({"state_dict": trained.state_dict()}, path)  # a training checkpoint wrapper
    loaded = deep2d.build(name, weights=path)
    np.testing.assert_allclose(_outputs(loaded, spec), _outputs(trained, spec), rtol=1e-5, atol=1e-6)
    assert not np.allclose(_outputs(loaded, spec), _outputs(reference, spec), rtol=1e-3, atol=0)


def test_torchvision_files_with_auxiliary_heads_and_old_densenet_keys_load(tmp_path):
    import torchvision

    googlenet = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)  # as published
    torch.save(googlenet.state_dict(), tmp_path / "googlenet.pth")
    deep2d.build("googlenet", weights=tmp_path / "googlenet.pth")
    densenet = deep2d.build("densenet201", weights=None, seed=3).state_dict()
    old_style = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in densenet.items()
                 if not k.endswith("num_batches_tracked")}  # as in the 2017 file
    assert old_style.keys() != densenet.keys()
    torch.save(old_style, tmp_path / "densenet_old.pth")
    loaded = deep2d.build("densenet201", weights=tmp_path / "densenet_old.pth").state_dict()
    assert all(torch.equal(loaded[k], densenet[k]) for k in densenet if not k.endswith("num_batches_tracked"))


def test_weights_that_do_not_fit_are_named(tmp_path):
    torch.save(deep2d.build("resnet18", weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="resnet18.pth: weights do not fit resnet50 .Missing key"):
        deep2d.build("resnet50", weights=tmp_path / "resnet18.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pth: cannot read weights: not a safetensors"):
        deep2d.build("resnet18", weights=tmp_path / "junk.pth")


def test_missing_imagenet_weights_fail_clearly_never_falling_back(tmp_path):
    with pytest.raises(deep2d.WeightsNotFound) as error:
        deep2d.build("resnet50", weights="imagenet")
    message = str(error.value)
    assert "resnet50-0676ba61.pth" in message and str(tmp_path / "weights") in message
    assert "rtresponse weights download resnet50" in message
    with pytest.raises(deep2d.WeightsNotFound, match="no ImageNet weights are published for 'darknet21'"):
        deep2d.build("darknet21", weights="imagenet")
    image, gtv = tumour_volume()
    with pytest.raises(deep2d.WeightsNotFound):
        deep2d.extract(image, gtv, model="resnet18", weights="imagenet", device="cpu")


def test_imagenet_weights_are_found_in_the_weights_folder_and_torch_hub_cache(tmp_path):
    spec = deep2d.MODELS["resnet18"]
    weights = deep2d.build("resnet18", weights=None, seed=4)
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(weights.state_dict(), folder / "resnet18.pth")
    assert deep2d.find_weights("resnet18") == folder / "resnet18.pth"
    np.testing.assert_allclose(_outputs(deep2d.build("resnet18", "imagenet"), spec), _outputs(weights, spec), rtol=1e-5)
    (folder / "resnet18.pth").unlink()
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(weights.state_dict(), hub / spec.weights["file"])
    assert deep2d.find_weights("resnet18") == hub / spec.weights["file"]


def test_extract_returns_the_networks_outputs_for_the_max_area_slice():
    image, gtv = tumour_volume()
    features = deep2d.extract(image, gtv, model="resnet18", weights=None, device="cpu")
    assert features.shape == (1000,) and np.isfinite(features).all()
    [crop] = tumour_slices(image, gtv)
    network = deep2d.build("resnet18", weights=None)
    with torch.inference_mode():
        expected = network(deep2d.to_input([crop.pixels], deep2d.MODELS["resnet18"])).numpy()[0]
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    pooled = deep2d.extract(image, gtv, model="resnet18", weights=None, device="cpu", top_k=3)
    crops = [c.pixels for c in tumour_slices(image, gtv, top_k=3)]
    np.testing.assert_allclose(pooled, deep2d.network_outputs(crops, "resnet18", None).mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(pooled, features)


def test_zscore_statistics_score_new_patients_the_same_way():
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(3, 2, (20, 4)), columns=list("abcd"))
    train["d"] = 5.0  # constant: std 1, z 0 rather than NaN
    train["status"] = "ok"
    scored, stats = deep2d.zscore(train)
    np.testing.assert_allclose(scored[list("abc")].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(scored[list("abc")].std(ddof=1), 1)
    assert (scored["d"] == 0).all() and stats.loc["std", "d"] == 1
    new, _ = deep2d.zscore(train.iloc[:3], stats)
    pd.testing.assert_frame_equal(new, scored.iloc[:3])
    with pytest.raises(InputError, match="lack 1 feature"):
        deep2d.zscore(train.assign(e=1.0), stats)


def test_cohort_extraction_one_row_per_patient_isolating_a_failure(synthetic_cohort, tmp_path):
    from conftest import copy_cohort
    from rtresponse.cohort import load_manifest

    manifest = copy_cohort(synthetic_cohort, tmp_path / "cohort")
    table = pd.read_csv(manifest, dtype=str)
    broken = table.loc[1, "patient_id"]
    table.loc[1, "mask_GTVp"] = "missing.nrrd"
    table.to_csv(manifest, index=False)
    cohort = load_manifest(manifest, check_files=False)
    seen = []
    result = deep2d.extract_cohort(cohort, "CT", "GTVp", model="resnet18", weights=None, device="cpu", batch_size=4,
                                   progress=lambda done, total: seen.append((done, total)))
    assert list(result.index) == cohort.patient_ids
    assert result.shape[1] == 1002 and seen[-1] == (len(cohort), len(cohort))
    assert list(result.columns[-2:]) == ["weights", "status"] and (result["weights"] == "random (seed 0)").all()
    assert result.attrs["provenance"]["weights"] == {"weights": "random", "seed": 0}
    assert result.loc[broken, "status"].startswith("patient " + broken) and "missing.nrrd" in result.loc[broken, "status"]
    ok = result[result["status"] == "ok"].drop(columns=["status", "weights"])
    assert len(ok) == len(cohort) - 1 and result.loc[broken].drop(["status", "weights"]).isna().all()
    np.testing.assert_allclose(ok.mean(), 0, atol=1e-6)
    stats = result.attrs["zscore"]
    raw = deep2d.extract_cohort(cohort, "CT", "GTVp", model="resnet18", weights=None, device="cpu",
                                standardize=False)
    rescored, _ = deep2d.zscore(raw[raw["status"] == "ok"], stats)  # the weights column is not z-scored
    np.testing.assert_allclose(rescored.drop(columns=["status", "weights"]), ok, atol=5e-4)  # other batch sizes: noise


def test_cli_writes_features_and_zscore_statistics(synthetic_cohort, tmp_path, capsys):
    from rtresponse.cli import main

    out = tmp_path / "deep.csv"
    assert main(["features", "--kind", "deep2d", "--model", "shufflenet_v2", "--weights", "random",
                 "--manifest", str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(out),
                 "--device", "cpu"]) == 0
    table = pd.read_csv(out, index_col="patient_id")
    assert len(table) == len(pd.read_csv(synthetic_cohort)) and (table["status"] == "ok").all()
    assert pd.read_csv(tmp_path / "deep.zscore.csv", index_col=0).index.tolist() == ["mean", "std"]
    assert main(["features", "--kind", "deep2d", "--model", "resnet18", "--manifest", str(synthetic_cohort),
                 "--image", "CT", "--mask", "GTVp", "--out", str(tmp_path / "x.csv")]) == 2
    assert "ImageNet weights for 'resnet18'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_cli_no_zscore_writes_the_networks_raw_outputs_and_no_statistics(synthetic_cohort, tmp_path, capsys):
    from rtresponse import provenance
    from rtresponse.cli import main
    from rtresponse.cohort import load_manifest

    out = tmp_path / "raw.csv"
    command = ["features", "--kind", "deep2d", "--model", "resnet18", "--weights", "random", "--device", "cpu",
               "--manifest", str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(out)]
    assert main(command + ["--no-zscore"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.csv", "raw.csv.json"]  # no raw.zscore.csv
    table = pd.read_csv(out, index_col="patient_id")
    cohort = load_manifest(synthetic_cohort)
    first = cohort.patient_ids[0]
    direct = deep2d.extract(cohort.read_image(first, "CT"), cohort.read_mask(first, "GTVp", image="CT"),
                            model="resnet18", weights=None, device="cpu")
    np.testing.assert_allclose(table.loc[first, deep2d.feature_names("resnet18")].astype(float), direct, rtol=1e-4,
                               atol=1e-4)
    assert provenance.read(out)["zscore"] == "none" and provenance.read(out)["settings"]["no_zscore"] is True
    capsys.readouterr()
    assert main(command[:-1] + [str(tmp_path / "x.csv"), "--no-zscore", "--zscore-from", str(out)]) == 2
    assert "--no-zscore and --zscore-from exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def manual_gradcam(network, layer, x, weights):
    """Grad-CAM written out: ReLU(sum_k mean(dScore/dA_k) A_k), min-max normalised, upsampled."""
    activations = {}
    handle = dict(network.named_modules())[layer].register_forward_hook(lambda m, i, o: activations.update(a=o))
    x = x.clone().requires_grad_(True)
    score = network(x)[0] @ torch.tensor(weights, dtype=torch.float32)
    (gradient,) = torch.autograd.grad(score, activations["a"])
    handle.remove()
    cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * activations["a"]).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    return torch.nn.functional.interpolate(cam, size=(100, 100), mode="bilinear", align_corners=False)[0, 0].detach()


def test_gradcam_matches_a_written_out_reference_for_a_feature_combination():
    image, gtv = tumour_volume()
    spec = deep2d.MODELS["resnet18"]
    coefficients = {"resnet18_0003": 0.7, "resnet18_0410": -1.2, "resnet18_0999": 0.4}
    weights = deep2d.target_weights("resnet18", coefficients)
    assert np.count_nonzero(weights) == 3 and weights[410] == -1.2
    values, crop = deep2d.gradcam_crop(image, gtv, model="resnet18", weights=None, target=coefficients, device="cpu")
    reference = manual_gradcam(deep2d.build("resnet18", None), spec.cam_layer,
                               deep2d.to_input([crop.pixels], spec), weights).numpy()
    assert values.shape == (100, 100) and values.max() > 0.5
    np.testing.assert_allclose(values, np.clip(reference, 0, 1), atol=1e-4)


def test_gradcam_volume_has_the_ct_geometry_and_lies_on_the_max_area_slice():
    import SimpleITK as sitk

    image, gtv = tumour_volume()
    heat = deep2d.gradcam(image, gtv, model="resnet18", weights=None, target=7, device="cpu")
    assert heat.GetSize() == image.GetSize() and heat.GetSpacing() == image.GetSpacing()
    assert heat.GetOrigin() == image.GetOrigin() and heat.GetDirection() == image.GetDirection()
    values = sitk.GetArrayFromImage(heat)
    assert [z for z in range(values.shape[0]) if values[z].any()] == [6]
    assert 0 <= values.min() and values.max() <= 1


def test_gradcam_targets_are_checked():
    stats = pd.DataFrame([np.zeros(1000), np.full(1000, 4.0)], index=["mean", "std"],
                         columns=deep2d.feature_names("resnet18"))
    np.testing.assert_allclose(deep2d.target_weights("resnet18", {"resnet18_0002": 2.0}, stats)[2], 0.5)
    for bad, match in [(1000, "0..999"), ({"resnet50_0001": 1.0}, "not a feature of resnet18"),
                       ([1.0, 2.0], "1000 values"), (np.zeros(1000), "all zero")]:
        with pytest.raises(InputError, match=match):
            deep2d.target_weights("resnet18", bad)


def test_segments_on_mrml_nodes(scene):
    from rtresponse import mrml

    image, gtv = tumour_volume()
    volume = mrml.image_to_volume_node(image, "CT", scene=scene)
    segmentation = mrml.new_segmentation_node("GTV", volume, scene=scene)
    segment = mrml.mask_to_segment(gtv, segmentation, "GTVp")
    table = deep2d.extract_segments(volume, segmentation, [segment], model="resnet18", weights=None, device="cpu")
    assert table.shape == (1, 1002) and table["status"].tolist() == ["ok"]
    assert table["weights"].tolist() == ["random (seed 0)"]  # the table says its weights were random
    node = mrml.dataframe_to_table_node(table, "deep features", scene)
    recorded = json.loads(node.GetAttribute("rtresponse.provenance"))
    assert recorded["weights"] == {"weights": "random", "seed": 0} and recorded["network"]["name"] == "resnet18"
    assert mrml.table_node_to_dataframe(node).attrs["provenance"]["weights"]["weights"] == "random"
    np.testing.assert_allclose(table.drop(columns=["status", "weights"]).to_numpy()[0],
                               deep2d.extract(image, gtv, model="resnet18", weights=None, device="cpu"), rtol=1e-4,
                               atol=1e-5)
    node = deep2d.gradcam_volume_node(volume, segmentation, segment, model="resnet18", weights=None, device="cpu")
    assert node.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    np.testing.assert_allclose(node.GetSpacing(), volume.GetSpacing())
    np.testing.assert_allclose(node.GetOrigin(), volume.GetOrigin())
