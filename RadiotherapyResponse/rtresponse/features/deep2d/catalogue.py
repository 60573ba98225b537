"""The deep-feature network zoo, read from ``rtresponse/data/deep2d_models.json`` (data, not code)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError

CATALOGUE = Path(__file__).resolve().parents[2] / "data" / "deep2d_models.json"
PAPER_DEFAULT = "inception_resnet_v2"  # the head-and-neck paper's best network


@dataclass(frozen=True)
class ModelSpec:
    """One network: how to build it, what it expects, where its ImageNet weights come from."""

    name: str
    paper_name: str
    library: str  # "timm" or "torchvision"
    id: str  # the library's model name
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_layer: str
    cam_layer: str
    licence: str
    weights: dict | None = None  # {"source", "file", "url" | "hf_hub_id", "tag"}; None: none published
    substitute_for: str | None = None
    substitute_note: str | None = None
    note: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, entry: dict) -> "ModelSpec":
        known = {k: v for k, v in entry.items() if k in cls.__dataclass_fields__ and k != "extra"}
        known["mean"], known["std"] = tuple(entry["mean"]), tuple(entry["std"])
        return cls(**known, extra={k: v for k, v in entry.items() if k not in cls.__dataclass_fields__})

    def describe(self) -> str:
        text = f"{self.name}: {self.paper_name} ({self.library} {self.id}, {self.input_size} px)"
        if self.substitute_for:
            text += f" — substitute: {self.substitute_note}"
        return text


def load_catalogue(path: str | Path = CATALOGUE) -> dict[str, ModelSpec]:
    entries = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
    return {entry["name"]: ModelSpec.from_dict(entry) for entry in entries}


MODELS: dict[str, ModelSpec] = load_catalogue()


def model_spec(name: str | ModelSpec) -> ModelSpec:
    if isinstance(name, ModelSpec):
        return name
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown network '{name}' (networks: {', '.join(MODELS)})") from None
