"""Where weights come from: bundled names, diffusers folders, sgm single files, hub ids — one entry point."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from svd3d.errors import SVD3DError
from svd3d.models import registry
from svd3d.models.bundle import SVDModel
from svd3d.models.diffusers_io import load_diffusers
from svd3d.models.hub import download
from svd3d.models.info import ModelInfo
from svd3d.models.sgm_load import load_sgm

__all__ = ["HUB_ID", "RELEASED_WIDTHS", "SVDModel", "ModelInfo", "Widths", "load_model", "model_widths", "check_kind"]

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name on the Hugging Face hub


def load_model(
    spec: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    config: str | Path | None = None,
) -> SVDModel:
    """Load a model on the CPU, weights cast to dtype, from any of:
    a bundled / registry name; a diffusers-format folder; an sgm single-file .safetensors (svd, svd_xt, sv3d_u,
    sv3d_p, or any other described by `config` or the `<name>.yaml` beside it); a Hugging Face hub id."""
    text = str(spec)
    names = registry.entries()
    if text in names:
        log.info("model %s (%s)", text, names[text].description)
        return names[text].load(dtype)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_diffusers(path, dtype)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise SVD3DError(
                f"{path}: only .safetensors checkpoints are loaded (pickle files like .ckpt can run code); "
                "convert it to safetensors first"
            )
        return load_sgm(path, dtype, Path(config) if config else None)
    if path.suffix in (".safetensors", ".ckpt", ".pt", ".bin") or text.startswith((".", "/", "~")):
        raise SVD3DError(f"model file {text} does not exist; check the path")
    if HUB_ID.match(text):
        return load_diffusers(download(text, dtype), dtype, source=text)
    known = ", ".join(names)
    raise SVD3DError(f"unknown model {text!r}: not a file, a folder, a known name ({known}) or a hub id (owner/name)")


def check_kind(model: SVDModel, kind: str) -> None:
    """Check that a model can run a job: 'video' needs fps / motion conditioning, 'orbit' camera conditioning."""
    if model.info.kind != kind:
        other = "svd3d orbit" if model.info.kind == "orbit" else "svd3d video"
        raise SVD3DError(f"model {model.source} is a {model.info.kind} model, not a {kind} model; use it with {other}")


@dataclass(frozen=True)
class Widths:
    """The sizes that set a model's activation memory (svd3d.pipelines.common.peak_memory)."""

    unet: int = 320  # UNet channels at latent resolution (its first block)
    decoder: int = 256  # VAE decoder channels upsampled to full resolution (its second-finest level)
    latent_factor: int = 8  # pixels per latent cell, per side


RELEASED_WIDTHS = Widths()  # SVD, SVD-XT, SV3D_u, SV3D_p


def model_widths(model) -> Widths:
    """The Widths of a loaded SVDModel, or of a bundled name / diffusers folder read from its config files without
    loading any weights; for anything else (sgm files, hub ids, random test models) the released models' widths."""
    if isinstance(model, SVDModel):
        return _widths(dict(model.unet.config), dict(model.vae.config)) or RELEASED_WIDTHS
    text = str(model or "")
    folder = registry.ASSETS / text if text in registry.entries() else Path(text).expanduser()
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
    except (OSError, ValueError):  # not a folder, or a broken one: load_model says what is wrong with it
        return RELEASED_WIDTHS
    return _widths(unet, vae) or RELEASED_WIDTHS


def _widths(unet_config: dict, vae_config: dict) -> Widths | None:
    try:
        unet, vae = list(unet_config["block_out_channels"]), list(vae_config["block_out_channels"])
        return Widths(int(unet[0]), int(vae[min(1, len(vae) - 1)]), 2 ** (len(vae) - 1))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
