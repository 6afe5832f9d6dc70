"""Jobs that chain the pipelines and models: image -> views around the object -> a textured mesh, in one folder;
a checkpoint -> a diffusers-format model folder.

A job here writes its whole output or nothing: the views and the mesh are staged together and replace an earlier
output only once both are complete (svd3d.outputs), so an interrupted or failed mesh stage leaves the previous
folder as it was.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from svd3d import media, outputs
from svd3d.pipelines.orbit import OrbitResult, generate_orbit, write_orbit_folder
from svd3d.recon.pipeline import ReconResult, check_recon_options, reconstruct


@dataclass
class AssetResult:
    views: OrbitResult  # the generated views and their cameras
    mesh: ReconResult  # the reconstructed mesh, its files and report (paths as they are once in place)
    output: Path


def check_mesh_options(recon: dict) -> None:
    """Check `reconstruct` keyword arguments (the unset ones take its defaults) before any work."""
    defaults = inspect.signature(reconstruct).parameters
    names = inspect.signature(check_recon_options).parameters
    check_recon_options(**{name: recon.get(name, defaults[name].default) for name in names})


@outputs.holds_output(lambda args: args["output"])
def generate_asset(image, *, output: str | Path, recon: dict | None = None, **orbit_options) -> AssetResult:
    """`image` -> views (`generate_orbit(image, **orbit_options)`) -> mesh (`reconstruct(folder, **recon)`) in the
    folder `output`: input.png, frames/, orbit.mp4, transforms.json, run.json, mesh.glb, preview.png, recon.json.

    Every option of both stages is checked before any work; the folder replaces an earlier svd3d output only when
    views and mesh are both complete."""
    out = Path(output)
    recon = dict(recon or {})

    # 1. check inputs: the mesh stage's options too, so a bad one never costs a generation; the output folder
    check_mesh_options(recon)
    outputs.check_replaceable(out)

    # 2. views, then the mesh, in one staging folder that is swapped into place when both are complete
    with outputs.replacing(out, "orbit") as tmp:
        views = generate_orbit(image, output=None, **orbit_options)
        write_orbit_folder(
            tmp, views.input_image, views.frames, views.elevations, views.azimuths, views.c2w, views.intrinsics
        )
        views.run["output"] = str(out)
        media.write_json(tmp / "run.json", views.run)
        outputs.write_mark(tmp, "orbit")  # the views are svd3d's: the mesh stage may replace their preview.png
        mesh = _as_placed(reconstruct(tmp, **recon), tmp, out)
    views.output = out
    return AssetResult(views, mesh, out)


@outputs.holds_output(lambda args: args["output"])
def reconstruct_into(folder: str | Path, output: str | Path, **recon) -> ReconResult:
    """`reconstruct(folder, **recon)` into the folder `output`, staged and swapped in whole (an earlier svd3d
    output there is replaced): an interrupted job leaves nothing there, not even a partial mesh."""
    out = Path(output)
    outputs.check_replaceable(out)
    with outputs.replacing(out, "recon") as tmp:
        return _as_placed(reconstruct(folder, output=tmp, **recon), tmp, out)


def _as_placed(result: ReconResult, staged: Path, out: Path) -> ReconResult:
    """A reconstruction written into the staging folder `staged`, its recon.json and files naming where they will
    be once `staged` is swapped into place at `out`."""
    moved = {str(staged): str(out)}
    result.report["input"] = moved.get(result.report["input"], result.report["input"])
    result.report["files"] = [str(out / Path(f).name) for f in result.report["files"]]
    media.write_json(staged / "recon.json", result.report)
    result.files = [out / Path(f).name for f in result.files]
    return result


@outputs.holds_output(lambda args: args["out_dir"])
def convert_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, config: str | Path | None = None, dtype: str = "float32"
):
    """An sgm single-file checkpoint (or a diffusers folder, to rewrite it at another dtype) -> a diffusers-format
    folder `out_dir`; returns the loaded model. The output is checked (and locked) before the checkpoint is read."""
    import torch

    from svd3d.devices import resolve_dtype
    from svd3d.errors import SVD3DError
    from svd3d.models import load_model
    from svd3d.models.diffusers_io import save_diffusers

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    outputs.check_replaceable(out_dir)
    if not (checkpoint.is_file() or (checkpoint / "model_index.json").is_file()):
        raise SVD3DError(
            f"checkpoint {checkpoint} is neither a file nor a diffusers folder (no model_index.json); pass an sgm "
            ".safetensors file or a model folder"
        )
    model = load_model(checkpoint, dtype=resolve_dtype(dtype, torch.device("cpu")), config=config)
    save_diffusers(model, out_dir)
    return model
