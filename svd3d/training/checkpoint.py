"""Training checkpoints (exact resume) and the exported model folder, both written atomically.

    RUN/checkpoints/step-000200/   unet.safetensors, ema.safetensors (when EMA is on), optimizer.pt (AdamW and
                                   LR-schedule state), vae.safetensors + image_encoder.safetensors (models trained
                                   from scratch: their VAE was trained here), state.json (step, recipe)
    RUN/model/                     the EMA weights as a diffusers-format folder `svd3d orbit --model RUN/model` loads

Every random draw of step s comes from a generator seeded by (train.seed, s), so model + optimiser state + step is
all a resume needs to continue exactly where a killed run left off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from svd3d.errors import SVD3DError
from svd3d.models.diffusers_io import save_diffusers
from svd3d.outputs import usual_permissions

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    folder: Path


def list_checkpoints(run: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first (a folder without state.json was interrupted: ignored)."""
    folder = Path(run) / "checkpoints"
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        match = _STEP_DIR.match(child.name)
        if match and (child / "state.json").is_file():
            found.append(Checkpoint(int(match.group(1)), child))
    return sorted(found, key=lambda c: c.step)


def save_checkpoint(run: Path, step: int, tensors: dict[str, dict[str, torch.Tensor]], optimizer: dict, state: dict,
                    keep: int) -> Path:  # fmt: skip
    """Write RUN/checkpoints/step-NNNNNN atomically (state.json last, then a rename); keep the newest `keep`."""
    final = Path(run) / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, weights in tensors.items():
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / f"{name}.safetensors"))
    torch.save(optimizer, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2) + "\n")
    usual_permissions(tmp)  # safetensors writes 0600 files
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old.folder, ignore_errors=True)
    return final


def load_checkpoint(folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict]:
    """(tensors by file name, optimizer state, state.json) of one checkpoint folder."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
        tensors = {p.stem: load_file(str(p)) for p in sorted(folder.glob("*.safetensors"))}
        optimizer = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise SVD3DError(
            f"checkpoint {folder} cannot be read ({err}); delete it to resume from the one before"
        ) from None
    return tensors, optimizer, state


def export_model(model, folder: Path) -> Path:
    """Write `model` (an SVDModel) as a diffusers-format folder at `folder`, replacing an older export atomically."""
    folder = Path(folder)
    new = folder.with_name(f".{folder.name}.new")
    old = folder.with_name(f".{folder.name}.old")
    for path in (new, old):
        shutil.rmtree(path, ignore_errors=True)
    save_diffusers(model, new)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
