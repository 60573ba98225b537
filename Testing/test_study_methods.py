"""`rtresponse study run` with the trained methods' protocols (i3d, residual, recurrence): their settings checked
against the protocol, cached like every step (a changed setting recomputes only that analysis), a patient who
cannot be read left out and listed, and their report parts (Dice/volume box plots, origin counts, loss curves,
Grad-CAM examples over the CT, the TRIPOD+AI checklist pointing at them). The demo test (test_cli_demo.py) runs
all four methods through one study file; this one runs the cheapest trained method (recurrence) small."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("sklearn")
pytest.importorskip("jinja2")

from rtresponse.errors import InputError  # noqa: E402
from rtresponse.studyrun.run import run_study  # noqa: E402
from rtresponse.studyrun.schema import check, load_study  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _study(**changes) -> dict:
    data = {"version": 1, "cohort": {"manifest": "m.csv"}, "analyses": [{"name": "a", "protocol": "recurrence"}]}
    data["analyses"][0].update(changes)
    return data


@pytest.mark.parametrize("changes, message", [
    ({"protocol": "split", "outcome": "response", "recurrence": {"epochs": 2}},
     "analyses[0].recurrence: a setting of protocol recurrence (this analysis' protocol is split)"),
    ({"protocol": "i3d"}, "analyses[0].outcome: required field is missing"),
    ({"recurrence": {"box": [32, 32, 20]}}, "analyses[0].recurrence.box: 3 sides (x, y, z), each divisible by 16"),
    ({"recurrence": {"epochs": 0}}, "analyses[0].recurrence.epochs: must be at least 1, got 0"),
    ({"protocol": "residual", "outcome": "residual", "residual": {"network": "resnet5O"}},
     "analyses[0].residual.network: unknown network 'resnet5O'"),
    ({"protocol": "i3d", "outcome": "response", "i3d": {"handcrafted": "hcr"}},
     "analyses[0].i3d.handcrafted: no handcrafted feature set 'hcr'"),
    ({"protocol": "i3d", "outcome": "response", "i3d": {"sequence": ["T1"]}},
     "analyses[0].i3d.sequence: unknown field"),
])
def test_protocol_settings_are_checked_against_the_protocol(changes, message):
    with pytest.raises(InputError) as caught:
        check(_study(**changes), "s.yaml")
    assert message in str(caught.value)


def test_each_protocol_gets_its_own_settings_with_every_default():
    study = check({"version": 1, "cohort": {"manifest": "m.csv"}, "analyses": [
        {"name": "v", "protocol": "recurrence"}, {"name": "r", "outcome": "residual", "protocol": "residual"},
        {"name": "d", "outcome": "response", "protocol": "i3d", "i3d": {"epochs": 5}},
        {"name": "s", "outcome": "response", "protocol": "split"}],
        "features": [{"name": "c", "kind": "clinical"}]}, "s.yaml")
    volumes, residual, dlr, split = study["analyses"]
    assert volumes["recurrence"]["box"] == [160, 224, 128] and volumes["recurrence"]["runs"] == 5
    assert "i3d" not in volumes and "residual" not in volumes and volumes["outcome"] is None
    assert residual["residual"]["network"] == "xception" and residual["residual"]["epochs"] == 40
    assert dlr["i3d"]["epochs"] == 5 and dlr["i3d"]["sequences"] == ["T1", "T2"]
    assert not {"i3d", "residual", "recurrence"} & set(split)  # the grid protocols' settings (and keys) unchanged


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.links = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs.get("href", ""))


def _write(folder: Path, manifest: Path, epochs: int = 2) -> Path:
    data = {"version": 1, "name": "methods test", "cohort": {"manifest": str(manifest)},
            "features": [{"name": "deep", "kind": "deep2d", "weights": "random", "size_mm": 60.0}],
            "analyses": [{"name": "volumes", "protocol": "recurrence",
                          "recurrence": {"box": [32, 32, 16], "channels": [4, 4, 8, 8, 16, 4], "epochs": epochs,
                                         "runs": 1, "learning_rate": 0.01, "fraction": 0.4}}],
            "report": {"scene": False, "dpi": 50, "gradcam_patients": 2}}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory):
    for module in ("torch", "monai", "timm", "radiomics"):  # the schema tests above need none of them
        pytest.importorskip(module)
    from rtresponse.cohort import load_manifest
    from rtresponse.sampledata.synthetic import write_cohort

    folder = tmp_path_factory.mktemp("methods")
    manifest = write_cohort(folder / "cohort", n_patients=12, seed=3)
    from rtresponse.recurrence.study import patients_with_mask, split_patients

    training = split_patients(patients_with_mask(load_manifest(manifest), "relapse"), seed=0)["train"]
    broken = training[0]
    (manifest.parent / broken / "PET.nrrd").write_bytes(b"not an image")  # one training patient's PET is unreadable
    out = folder / "out"
    result = run_study(load_study(_write(folder, manifest)), out, log=lambda line: None)
    return result, folder, manifest, broken


def test_recurrence_runs_cached_with_the_unreadable_patient_left_out_and_listed(methods_run):
    result, folder, manifest, broken = methods_run
    statuses = {f"{s.kind}/{s.name}": s.status for s in result.steps}
    assert statuses == {"cohort/manifest": "computed", "features/deep": "computed", "gradcam/deep": "computed",
                        "analysis/volumes": "computed"}
    step = next(s for s in result.steps if s.name == "volumes")
    assert broken in step.summary["dropped"] and step.summary["fraction"] == 0.4
    failures = pd.read_csv(result.out / "tables" / "patient_failures.csv", dtype=str)
    assert list(failures["patient_id"]) == [broken] and failures["step"].iloc[0] == "analysis volumes"
    cases = pd.read_csv(result.out / "tables" / "volumes_cases.csv", dtype={"patient_id": str})
    assert set(cases["method"]) == {"CNN", "SUVmax threshold", "GTV contour"}
    assert cases["dice"].between(0, 1).all()
    # a re-run reuses every step; one changed setting recomputes that analysis only
    again = run_study(load_study(_write(folder, manifest)), result.out, log=lambda line: None)
    assert again.computed == []
    changed = run_study(load_study(_write(folder, manifest, epochs=1)), result.out, log=lambda line: None)
    assert changed.computed == ["analysis/volumes"]
    history = pd.read_csv(changed.out / "tables" / "volumes_history.csv")
    assert list(history["epoch"]) == [1] and history["kept"].all()
    run_study(load_study(_write(folder, manifest)), result.out, log=lambda line: None)  # back: served from the cache


def test_report_has_the_volume_plots_loss_curves_gradcam_and_checklist_links(methods_run):
    result = methods_run[0]
    html = (result.out / "report.html").read_text(encoding="utf-8")
    parsed = _Parsed()
    parsed.feed(html)
    assert {"analysis-volumes", "analysis-volumes-volumes", "analysis-volumes-loss", "gradcam"} <= parsed.ids
    for figure in ("volumes_boxplots", "volumes_origins", "volumes_loss", "gradcam_deep"):
        assert f"figure-{figure}" in parsed.ids, figure
        assert (result.out / "figures" / f"{figure}.png").read_bytes().startswith(PNG)
        assert b"<svg" in (result.out / "figures" / f"{figure}.svg").read_bytes()[:2000]
    for src in parsed.images:
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG)
    assert all(link[1:] in parsed.ids for link in parsed.links if link.startswith("#"))  # no dangling anchor
    assert {"#analysis-volumes-volumes", "#analysis-volumes-loss", "#gradcam"} <= set(parsed.links)  # TRIPOD+AI
    for text in ("Kutnár", "SUVmax threshold", "GTV contour", "RANDOM network weights", "Model card"):
        assert text in html, text
    summary = pd.read_csv(result.out / "tables" / "volumes_results.csv")
    assert {"dice_median", "volume_cc_median", "origins_included", "origins_total"} <= set(summary.columns)
    card = json.loads((Path(next(s for s in result.steps if s.name == "volumes").folder) / "model" /
                       "model_card.json").read_text(encoding="utf-8"))
    assert card["suvmax_fraction"] == 0.4 and card["parameters"] > 0
