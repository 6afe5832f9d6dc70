"""Model names svd3d knows without a path: bundled models (assets/models/) and tiny random test models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from svd3d.errors import SVD3DError
from svd3d.models.diffusers_io import load_diffusers, read_info
from svd3d.models.info import ModelKind
from svd3d.models.tiny import tiny_random_model

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "models"


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    kind: ModelKind  # "video" or "orbit"
    description: str
    load: Callable[[torch.dtype], object]  # dtype -> SVDModel


def _bundled(name: str) -> Callable[[torch.dtype], object]:
    def load(dtype: torch.dtype):
        return load_diffusers(ASSETS / name, dtype, source=name)

    return load


def _random(kind: str) -> Callable[[torch.dtype], object]:
    def load(dtype: torch.dtype):
        return tiny_random_model(kind, seed=0, dtype=dtype)

    return load


def bundled_kind(folder: Path) -> ModelKind:
    """The kind a bundled model folder's svd3d.json records; only for a folder without a readable one, a guess from
    its name ("orbit" in it: orbit, else video). A broken svd3d.json is reported when the model is loaded."""
    try:
        info = read_info(folder)
    except SVD3DError:
        info = None
    if info is not None:
        return info.kind
    return "orbit" if "orbit" in folder.name else "video"


def entries() -> dict[str, RegistryEntry]:
    """Every name `--model` accepts besides paths and hub ids. Bundled folders appear once they are shipped."""
    found: dict[str, RegistryEntry] = {}
    for folder in sorted(ASSETS.glob("*/model_index.json")):
        name = folder.parent.name
        found[name] = RegistryEntry(name, bundled_kind(folder.parent), f"bundled, {folder.parent}", _bundled(name))
    found["random-tiny-video"] = RegistryEntry(
        "random-tiny-video",
        "video",
        "random weights, SVD layout (tests, benchmarks; output is noise)",
        _random("video"),
    )
    found["random-tiny-orbit"] = RegistryEntry(
        "random-tiny-orbit",
        "orbit",
        "random weights, SV3D_p layout (tests, benchmarks; output is noise)",
        _random("orbit"),
    )
    return found


def adapter_entries() -> dict[str, Path]:
    """Bundled LoRA adapters (assets/models/<name>/adapter_config.json, svd3d.models.lora): name -> folder."""
    return {folder.parent.name: folder.parent for folder in sorted(ASSETS.glob("*/adapter_config.json"))}


DEFAULT_MODELS = {"video": "tiny-video", "orbit": "tiny-orbit"}  # bundled defaults, once trained and shipped


def default_model(kind: str) -> str:
    """The bundled model a job uses when no --model is named; a clear error while none is installed."""
    name = DEFAULT_MODELS[kind]
    if name not in entries():
        raise SVD3DError(
            f"no --model given and the bundled default {name!r} is not installed; pass --model: an sgm .safetensors "
            f"(e.g. svd_xt.safetensors), a diffusers folder, a hub id, or random-tiny-{kind} for a smoke test"
        )
    return name
