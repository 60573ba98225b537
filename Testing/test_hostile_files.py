"""Hostile model and scene files: each load is refused with one InputError naming the file, and runs nothing.

Every crafted file carries a payload that would create ``marker`` in ``tmp_path`` if any of its
code ran; each test asserts the refusal, the file's path in the message, and no marker.

The ``.skops`` payloads are wired the way skops builds objects (skops/io/_general.py):
``ConstructorFromReduceNode`` calls ``module.Class(*args)``, a ``DictNode`` calls each of its key
types on its key, a ``PartialNode`` builds ``functools.partial(func, ...)``. Checked once by hand
(a scratch script, not part of this suite): with the previous ``load_model``, which trusted every
type whose name started with "builtins.", "numpy.", "sklearn.", ... the exec, eval,
compile-then-exec, getattr-chain and exec-as-key-type files DID create the marker, and the
"allowed type, other loader" file made it try to allocate 7 TiB (a MemoryError traceback); the
os, posix, subprocess and functools.partial ones were already refused (those prefixes were not
trusted) and are kept as regression cases. The pickles (renamed ``.skops`` / ``.pt`` / ``.pth``)
create the marker when given to ``pickle.loads``.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skops")
pytest.importorskip("sklearn")

import skops.io as sio  # noqa: E402

from rtresponse import safezip  # noqa: E402
from rtresponse.errors import InputError  # noqa: E402
from rtresponse.models.persistence import allowed_types, load_model, save_model  # noqa: E402

MODEL_FORMAT = "rtresponse-model-1"


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "a hostile file ran code"


def assert_refused(call, path, *, match=None):
    """``call()`` raises InputError whose message names ``path`` (and matches ``match``)."""
    with pytest.raises(InputError) as error:
        call()
    message = str(error.value)
    assert str(path) in message, message
    assert "\n" not in message
    if match is not None:
        assert match in message, message
    return message


# --------------------------------------------------------------------------- skops nodes

def _json(value):
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value),
            "is_json": True}


def _tuple(*items):
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def _list(*items):
    return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": list(items)}


def _type(module, name):
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def _call(module, name, *args):
    """skops constructs this as ``module.name(*args)``."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(*args)}


def _dict(content: dict, key_types: list):
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": content,
            "key_types": _list(*key_types)}


def _called_on_key(function_node, key: str):
    """A dict whose key type is ``function_node``: skops calls it on ``key`` to rebuild the key."""
    return _dict({key: _json(0)}, [function_node])


def _partial(function_node):
    return {"__class__": "partial", "__module__": "functools", "__loader__": "PartialNode",
            "content": {"func": function_node, "args": _tuple(), "kwds": _dict({}, []), "namespace": _json(None)}}


def write_skops(path: Path, model_node) -> Path:
    """A zip laid out as skops writes it, whose bundle's "model" is ``model_node``."""
    schema = _dict({"format": _json(MODEL_FORMAT), "model": model_node}, [_type("builtins", "str")] * 2)
    schema.update(protocol=2, _skops_version="0.16.0")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return path


def _payloads(marker: Path) -> dict:
    code = f"open({str(marker)!r}, 'w').write('ran')"
    touch = f"touch {shlex.quote(str(marker))}"
    system = _call("builtins", "getattr", _call("builtins", "__import__", _json("os")), _json("system"))
    return {  # name -> (model node, a type the file needs that must be refused)
        "exec": (_call("builtins", "exec", _json(code)), "builtins.exec"),
        "eval": (_call("builtins", "eval", _json(code)), "builtins.eval"),
        "getattr_chain": (_called_on_key(system, touch), "builtins.getattr"),
        "exec_as_key_type": (_called_on_key(_type("builtins", "exec"), code), "builtins.exec"),
        "compile_then_exec": (_call("builtins", "exec", _call("builtins", "compile", _json(code), _json("x"),
                                                              _json("exec"))), "builtins.compile"),
        "os_system": (_call("os", "system", _json(touch)), "os.system"),
        "posix_system_as_key_type": (_called_on_key(_type("posix", "system"), touch), "posix.system"),
        "subprocess_popen": (_call("subprocess", "Popen", _list(_json("touch"), _json(str(marker)))),
                             "subprocess.Popen"),
        "partial_exec": (_called_on_key(_partial(_type("builtins", "exec")), code), "functools.partial"),
        # an allowed type with a loader that would call it with the file's arguments: np.ndarray(shape)
        "allowed_type_other_loader": ({**_list(_json(10 ** 6), _json(10 ** 6)), "__class__": "ndarray",
                                       "__module__": "numpy"}, "numpy.ndarray"),
    }


PAYLOADS = list(_payloads(Path("m")))


@pytest.mark.parametrize("name", PAYLOADS)
def test_skops_payloads_are_refused_and_run_nothing(name, tmp_path, marker):
    node, needed = _payloads(marker)[name]
    path = write_skops(tmp_path / f"{name}.skops", node)
    assert needed in sio.get_untrusted_types(file=path)  # skops parses the file: the payload is wired
    message = assert_refused(lambda: load_model(path), path, match="the file needs types this program does not trust")
    assert needed in message


def test_cli_predict_refuses_a_hostile_model_and_writes_nothing(tmp_path, marker, capsys):
    from rtresponse.cli import main

    node, _ = _payloads(marker)["exec"]
    model = write_skops(tmp_path / "hostile.skops", node)
    features = tmp_path / "F.csv"
    features.write_text("patient_id,x\nP1,1.0\n")
    out = tmp_path / "out.csv"
    code = main(["predict", "--model", str(model), "--features", str(features), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rtresponse: error:") and str(model) in err and "does not trust" in err
    assert not out.exists()


class _Payload:
    """Pickling stores ``os.system(touch marker)``; unpickling would run it."""

    def __init__(self, marker: Path):
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self):
        return os.system, (self.command,)


def _pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    return path


def test_a_pickle_renamed_skops_is_refused(tmp_path, marker):
    path = _pickle(tmp_path / "model.skops", marker)
    assert_refused(lambda: load_model(path), path, match="pickle")


def test_junk_and_empty_zips_are_not_model_files(tmp_path):
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert_refused(lambda: load_model(junk), junk, match="not a model file")
    empty = tmp_path / "empty.skops"
    zipfile.ZipFile(empty, "w").close()
    assert_refused(lambda: load_model(empty), empty, match="not a model file")
    nested = tmp_path / "nested.skops"  # deeper than JSON parsers recurse
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("schema.json", "[" * 100_000 + "]" * 100_000)
    assert_refused(lambda: load_model(nested), nested, match="not a model file")


# --------------------------------------------------------------------------- zip bombs and escaping names

def _declared_bomb(path: Path, first_member: str = "schema.json") -> Path:
    """A few bytes whose zip directory declares 3 GiB: what check_zip must judge (nothing is unpacked)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(first_member, b"{}")
        archive.filelist[-1].file_size = 3 * 1024 ** 3
    return path


def _ratio_bomb(path: Path) -> Path:
    """80 MiB of zeros in ~80 kB (ratio ~1000): real, not just declared."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", b"{}")
        with archive.open("0.npy", "w") as member:
            for _ in range(80):
                member.write(bytes(1024 ** 2))
    return path


def _many_members(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for number in range(count):
            archive.writestr(f"{number}.bin", b"")
    return path


def test_skops_zip_bombs_are_refused_before_skops_reads_them(tmp_path, monkeypatch):
    declared = _declared_bomb(tmp_path / "declared.skops")
    assert_refused(lambda: load_model(declared), declared, match="zip bomb")
    ratio = _ratio_bomb(tmp_path / "ratio.skops")
    assert_refused(lambda: load_model(ratio), ratio, match="zip bomb")
    monkeypatch.setattr(safezip, "MAX_MEMBERS", 20)  # 100,001 real members take seconds to write
    many = _many_members(tmp_path / "many.skops", 21)
    assert_refused(lambda: load_model(many), many, match="zip bomb")


def _escaping_names(tmp_path: Path) -> list[str]:
    target = str(tmp_path / "escaped.txt")
    return ["../escaped.txt", "a/../../escaped.txt", "../" * 40 + target.lstrip("/"), target, "..\\escaped.txt",
            "C:/escaped.txt"]


def _with_member(path: Path, name: str, legit: Path | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        if legit is not None:
            with zipfile.ZipFile(legit) as source:
                for info in source.infolist():
                    archive.writestr(info, source.read(info))
        archive.writestr(zipfile.ZipInfo(name), b"escaped")
    return path


def test_skops_members_outside_the_archive_are_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    legit = save_model(tmp_path / "legit.skops", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), ["x"], "r", 1, .5)
    assert load_model(legit)["features"] == ["x"]
    for number, name in enumerate(_escaping_names(tmp_path)):
        path = _with_member(tmp_path / f"escape{number}.skops", name, legit)
        assert_refused(lambda: load_model(path), path, match="outside its folder")
    assert not (tmp_path / "escaped.txt").exists()


def test_safe_extract_writes_only_inside_its_folder(tmp_path):
    legit = tmp_path / "legit.zip"
    with zipfile.ZipFile(legit, "w") as archive:
        archive.writestr("Scene/Scene.mrml", b"<MRML/>")
        archive.writestr("Scene/Data/", b"")
    written = safezip.safe_extract(legit, tmp_path / "out", "a scene bundle")
    assert written == [(tmp_path / "out" / "Scene" / "Scene.mrml").resolve()]
    for number, name in enumerate(_escaping_names(tmp_path)):
        path = _with_member(tmp_path / f"escape{number}.zip", name)
        assert_refused(lambda: safezip.safe_extract(path, tmp_path / f"out{number}", "a scene bundle"), path,
                 match="outside its folder")
        assert not any((tmp_path / f"out{number}").rglob("*"))
    assert not (tmp_path / "escaped.txt").exists()


# --------------------------------------------------------------------------- scene bundles (.mrb)

@pytest.fixture
def open_scene_bundle():
    pytest.importorskip("slicer")
    from rtresponse.mrml.nodes import open_scene_bundle

    return open_scene_bundle


def test_mrb_that_is_not_a_zip_is_refused(tmp_path, marker, open_scene_bundle):
    junk = tmp_path / "junk.mrb"
    junk.write_bytes(b"<MRML></MRML>")
    assert_refused(lambda: open_scene_bundle(junk), junk, match="not a zip archive")
    hostile = _pickle(tmp_path / "scene.mrb", marker)
    assert_refused(lambda: open_scene_bundle(hostile), hostile, match="pickle")


def test_mrb_escaping_members_and_bombs_are_refused(tmp_path, open_scene_bundle):
    for number, name in enumerate(_escaping_names(tmp_path)):
        path = _with_member(tmp_path / f"escape{number}.mrb", name)
        assert_refused(lambda: open_scene_bundle(path), path, match="outside its folder")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (Path(os.path.dirname(tmp_path)) / "escaped.txt").exists()
    bomb = _declared_bomb(tmp_path / "bomb.mrb", "Scene/Scene.mrml")
    assert_refused(lambda: open_scene_bundle(bomb), bomb, match="zip bomb")
    ratio = _ratio_bomb(tmp_path / "ratio.mrb")
    assert_refused(lambda: open_scene_bundle(ratio), ratio, match="zip bomb")


# --------------------------------------------------------------------------- PyTorch files

class _LazyTorch:
    """``torch`` for the tests below, skipping them (not the whole module) where it is not installed."""

    def __getattr__(self, name):
        return getattr(pytest.importorskip("torch"), name)


torch = _LazyTorch()


def test_pickles_renamed_pt_are_refused_by_read_state(tmp_path, marker):
    from rtresponse.modelfile import read_state

    raw = _pickle(tmp_path / "model.pt", marker)
    assert_refused(lambda: read_state(raw, "rtresponse-recurrence-unet-1", "the model", "a recurrence model"), raw,
             match="cannot read the model")
    wrapped = tmp_path / "wrapped.pt"  # a real PyTorch zip whose data.pkl holds the payload
    torch.save({"format": "rtresponse-recurrence-unet-1", "config": _Payload(marker)}, wrapped)
    assert_refused(lambda: read_state(wrapped, "rtresponse-recurrence-unet-1", "the model", "a recurrence model"),
             wrapped, match="cannot read the model")


def test_pickles_renamed_pth_are_refused_as_weights(tmp_path, marker):
    from rtresponse.features.deep2d.weights import read_state_dict

    raw = _pickle(tmp_path / "resnet18.pth", marker)
    assert_refused(lambda: read_state_dict(raw), raw, match="cannot read weights")
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(1)}, "extra": _Payload(marker)}, wrapped)
    assert_refused(lambda: read_state_dict(wrapped), wrapped, match="cannot read weights")


def test_pickle_renamed_pth_is_refused_when_building_a_network(tmp_path, marker):
    from rtresponse.features import deep2d

    raw = _pickle(tmp_path / "resnet18.pth", marker)
    assert_refused(lambda: deep2d.build("resnet18", weights=raw), raw, match="cannot read weights")


def _torch_bomb(path: Path) -> Path:
    """torch.save's layout, with one member declared 3 GiB (a zip bomb for torch's own reader)."""
    torch.save({"format": "x", "state_dict": {"w": torch.zeros(2)}}, path)
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
        archive.filelist[-1].file_size = 3 * 1024 ** 3
    return path


def test_torch_zip_bombs_are_refused_before_torch_reads_them(tmp_path):
    from rtresponse.features.deep2d.weights import read_state_dict
    from rtresponse.modelfile import read_state

    bomb = _torch_bomb(tmp_path / "bomb.pt")
    assert_refused(lambda: read_state(bomb, "x", "the model", "a model"), bomb, match="zip bomb")
    weights = _torch_bomb(tmp_path / "bomb.pth")
    assert_refused(lambda: read_state_dict(weights), weights, match="zip bomb")
    escaping = tmp_path / "escaping.pt"
    torch.save({"format": "x"}, escaping)
    _with_member(tmp_path / "escaping2.pt", "../escaped.txt", escaping)
    assert_refused(lambda: read_state(tmp_path / "escaping2.pt", "x", "the model", "a model"), tmp_path / "escaping2.pt",
             match="outside its folder")


def _tampered(path: Path, change) -> Path:
    state = torch.load(path, weights_only=True)
    change(state)
    out = path.with_name(f"tampered_{path.name}")
    torch.save(state, out)
    return out


def _drop_first_key(state):
    state["state_dict"].pop(next(iter(state["state_dict"])))


def _reshape_first(state):
    key = next(iter(state["state_dict"]))
    state["state_dict"][key] = torch.zeros(3, 1, 1)


def _drop(name):
    def change(state):
        state.pop(name)
    return change


def _check_tampered(saved: Path, load):
    """The right format tag, but weights or settings that do not fit: one InputError naming the file."""
    assert load(saved) is not None
    missing = _tampered(saved, _drop_first_key)
    assert_refused(lambda: load(missing), missing, match="the file's weights do not fit the network (Missing key")
    shapes = _tampered(saved, _reshape_first)
    assert_refused(lambda: load(shapes), shapes, match="the file's weights do not fit the network (size mismatch")
    no_weights = _tampered(saved, _drop("state_dict"))
    assert_refused(lambda: load(no_weights), no_weights, match="no state_dict")


def test_recurrence_model_with_wrong_weights_or_settings(tmp_path):
    pytest.importorskip("monai")
    from rtresponse.recurrence import load_model as load_unet, make_unet, save_model as save_unet

    saved = save_unet(tmp_path / "unet.pt", make_unet((2, 2, 2, 2, 2, 2)), {"channels": [2, 2, 2, 2, 2, 2]})
    _check_tampered(saved, load_unet)
    no_config = _tampered(saved, _drop("config"))
    assert_refused(lambda: load_unet(no_config), no_config, match="settings do not describe a network")
    odd = _tampered(saved, lambda state: state.update(config={"channels": [2, 2]}))
    assert_refused(lambda: load_unet(odd), odd, match="channels must be the 6 feature counts")


def test_i3d_head_with_wrong_weights_or_settings(tmp_path):
    from rtresponse.models.i3d.fusion import make_fusion
    from rtresponse.models.i3d.training import load_head, save_head

    saved = save_head(tmp_path / "head.pt", make_fusion(n_image=8, hidden=4), {"outcome": "response"})
    _check_tampered(saved, load_head)
    odd = _tampered(saved, lambda state: state.update(architecture='{"n_image": "many"}'))
    assert_refused(lambda: load_head(odd), odd, match="settings do not describe a network")


def test_residual_files_with_wrong_weights_or_settings(tmp_path):
    from rtresponse.residual import (Classifier, ClassifierConfig, Segmenter, SegmenterConfig, load_classifier,
                                     load_segmenter, save_classifier, save_segmenter)
    from rtresponse.residual.classification import make_classifier
    from rtresponse.residual.segmentation import make_segmenter

    config = SegmenterConfig(architecture="unet", input_size=32, unet_features=(2, 2, 2, 2, 2, 2),
                             backbone_weights=None)
    saved = save_segmenter(tmp_path / "segmenter.pt",
                           Segmenter(make_segmenter("unet", None, 0, config.unet_features), config))
    _check_tampered(saved, load_segmenter)
    classifier = ClassifierConfig(network="squeezenet", weights=None, input_size=32)
    saved = save_classifier(tmp_path / "classifier.pt", Classifier(make_classifier("squeezenet", None), classifier))
    _check_tampered(saved, load_classifier)
    unknown = _tampered(saved, lambda state: state["config"].update(network="no-such-network"))
    assert_refused(lambda: load_classifier(unknown), unknown)


# --------------------------------------------------------------------------- the allow-list

NEVER = ("builtins.exec", "builtins.eval", "builtins.compile", "builtins.getattr", "builtins.setattr",
         "builtins.__import__", "builtins.open", "builtins.input", "builtins.breakpoint")
NEVER_PREFIXES = ("os.", "posix.", "nt.", "subprocess.", "functools.", "operator.", "importlib.", "sys.", "shutil.",
                  "pickle.", "runpy.", "code.", "ctypes.", "io.", "pathlib.")


def test_allow_list_holds_nothing_that_runs_code():
    allowed = allowed_types()
    names = set().union(*allowed.values())
    assert not names & set(NEVER)
    assert not [name for name in names if name.startswith(NEVER_PREFIXES)]
    assert {name for name in names if name.startswith("builtins.")} <= {"builtins.dict", "builtins.list",
                                                                           "builtins.tuple", "builtins.str"}
    # loaders that call or fetch arbitrary callables, or bind methods, are not needed by any model we make
    assert not set(allowed) & {"ConstructorFromReduceNode", "MethodNode", "PartialNode", "OperatorFuncNode"}


def _every_model():
    """Every fitted model the library can save, as (label, model)."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    from rtresponse.models.classifiers import CLASSIFIER_NAMES, make_classifier, svm_grid_search
    from rtresponse.models.grid import _with_imputer
    from rtresponse.selection import SELECTORS, make_selector

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 5)), columns=[f"f{i}" for i in range(5)])
    y = (X["f0"] + rng.normal(size=30) > 0).astype(int).to_numpy()
    gaps = X.copy()
    gaps.iloc[::6, 1] = np.nan
    for classifier in CLASSIFIER_NAMES:
        yield f"{classifier} alone", make_classifier(classifier).fit(X, y)
        yield f"{classifier} alone, arrays, string labels", make_classifier(classifier).fit(
            X.to_numpy(), np.where(y == 1, "yes", "no"))
        yield f"imputer + {classifier} (evaluate / split)", _with_imputer(make_classifier(classifier)).fit(gaps, y)
        for selector in SELECTORS:  # run_grid(selection="inside")
            model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                  make_selector(selector, k=3, random_state=0), make_classifier(classifier))
            yield f"imputer + {selector} + {classifier}", model.fit(gaps, y)
    yield "imputer + tuned svm (split_validation(tuned_svm=True))", _with_imputer(svm_grid_search()).fit(gaps, y)


def test_allow_list_covers_every_model(tmp_path):
    """Save every model the library makes and read back the types its file needs.

    A new scikit-learn (or skops) that needs a type missing from data/skops_allowlist.json fails here with
    the type's name, instead of users' model files being refused.
    """
    import warnings

    from rtresponse.models.persistence import schema_types

    allowed = allowed_types()
    everything = set().union(*allowed.values())
    missing = {}
    path = tmp_path / "model.skops"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny fits
        for label, model in _every_model():
            save_model(path, model, ["f0"], "response", 1, 0.5, description=label)
            with zipfile.ZipFile(path) as archive:
                pairs = schema_types(json.loads(archive.read("schema.json")))
            for loader, name in pairs:
                if name not in allowed.get(loader, ()):
                    missing.setdefault(f"{loader}: {name}", label)
            for name in sio.get_untrusted_types(file=path):
                if name not in everything:
                    missing.setdefault(f"(skops) {name}", label)
            if not missing:
                assert load_model(path)["description"] == label
    assert not missing, f"add to data/skops_allowlist.json: {missing}"
