"""Where weights come from: bundled names, diffusers folders, sgm single files, hub ids — one entry point."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from svd3d.errors import SVD3DError
from svd3d.models.bundle import SVDModel
from svd3d.models.info import ModelInfo

__all__ = ["SVDModel", "ModelInfo", "load_model", "resolve_kind"]

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_model(
    spec: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    config: str | Path | None = None,
) -> SVDModel:
    """Load a model on the CPU, weights cast to dtype, from any of:
    a bundled / registry name; a diffusers-format folder; an sgm single-file .safetensors (svd, svd_xt, sv3d_u,
    sv3d_p, or any other described by `config` or the `<name>.yaml` beside it); a Hugging Face hub id."""
    from svd3d.models import registry

    text = str(spec)
    names = registry.entries()
    if text in names:
        log.info("model %s (%s)", text, names[text].description)
        return names[text].load(dtype)
    path = Path(text).expanduser()
    if path.is_dir():
        from svd3d.models.diffusers_io import load_diffusers

        return load_diffusers(path, dtype)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise SVD3DError(
                f"{path}: only .safetensors checkpoints are loaded (pickle files like .ckpt can run code); "
                "convert it to safetensors first"
            )
        from svd3d.models.sgm_load import load_sgm

        return load_sgm(path, dtype, Path(config) if config else None)
    if path.suffix in (".safetensors", ".ckpt", ".pt", ".bin") or text.startswith((".", "/", "~")):
        raise SVD3DError(f"model file {text} does not exist; check the path")
    if _HUB_ID.match(text):
        from svd3d.models.diffusers_io import load_diffusers
        from svd3d.models.hub import download

        return load_diffusers(download(text, dtype), dtype, source=text)
    known = ", ".join(names)
    raise SVD3DError(f"unknown model {text!r}: not a file, a folder, a known name ({known}) or a hub id (owner/name)")


def resolve_kind(model: SVDModel, kind: str) -> None:
    """Check that a model can run a job: 'video' needs fps / motion conditioning, 'orbit' camera conditioning."""
    if model.info.kind != kind:
        other = "svd3d orbit" if model.info.kind == "orbit" else "svd3d video"
        raise SVD3DError(f"model {model.source} is a {model.info.kind} model, not a {kind} model; use it with {other}")
