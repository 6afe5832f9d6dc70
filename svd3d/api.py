"""svd3d's Python face: every job the command line runs, as one typed function each. `import svd3d` offers them
(svd3d/__init__.py loads this module on first use); `svd3d.cli` only parses options and calls them.

    views = svd3d.generate_orbit("chair.png", output="out/chair")      # 21 views + cameras
    mesh = svd3d.reconstruct("out/chair")                              # mesh.glb beside them
    asset = svd3d.generate_asset("chair.png", output="out/chair")      # both, staged as one output
    clip = svd3d.generate_video("photo.png", output="photo.mp4")
    clip = svd3d.generate_video(prompt="a red balloon", t2i_model="stabilityai/sd-turbo", output="balloon.mp4")

The defaults are written once, in svd3d.defaults. A job here writes its whole output or nothing (svd3d.outputs):
an interrupted or failed job leaves an earlier output as it was.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import torch

from svd3d import batch, defaults, media, outputs, viewer
from svd3d.cameras import build_orbit
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.eval.asset import AssetEval, evaluate_asset
from svd3d.eval.camera import CameraEval, evaluate_camera
from svd3d.eval.family import FamilyEval, evaluate_families
from svd3d.eval.metrics import MeshScores, compare_meshes
from svd3d.eval.orbit import OrbitEval, evaluate_orbit
from svd3d.eval.video import VideoEval, evaluate_video
from svd3d.geometry import load_mesh, set_ray_threads
from svd3d.models import SVDModel, load_model
from svd3d.models.diffusers_io import save_diffusers
from svd3d.models.registry import RegistryEntry, adapter_entries, entries
from svd3d.pipelines.common import check_positive, ready_model
from svd3d.pipelines.orbit import OrbitResult, generate_orbit, write_orbit_folder
from svd3d.pipelines.text import MadeImage, text_request, text_to_image
from svd3d.pipelines.video import VideoResult, generate_video
from svd3d.recon.export import export_mesh
from svd3d.recon.pipeline import ReconResult, check_recon_options
from svd3d.recon.pipeline import reconstruct as reconstruct_mesh
from svd3d.render import render_to_folder
from svd3d.training.clips import synthetic_clips
from svd3d.training.curate import CurateResult, CurateSettings, curate
from svd3d.training.data import (
    ClipData,
    OrbitData,
    OrbitLook,
    RenderOrbitSettings,
    check_dataset_output,
    load_dataset,
)
from svd3d.training.loop import TrainResult
from svd3d.training.loop import train as _train
from svd3d.training.meshes import render_orbit_dataset
from svd3d.training.procedural import ProceduralSettings, procedural_orbit_dataset
from svd3d.training.recipe import Recipe, parse_override
from svd3d.training.videos import load_video_folder

__all__ = [
    "generate_video", "generate_orbit", "generate_asset", "generate_image", "reconstruct", "reconstruct_into",
    "render_orbit", "export_mesh", "load_model", "prepare_model", "train", "build_dataset", "curate_videos",
    "convert_checkpoint", "evaluate_mesh", "evaluate_orbit", "evaluate_families", "evaluate_video", "evaluate_asset",
    "evaluate_camera", "run_batch", "model_entries", "lora_entries", "check_mesh_options", "AssetResult",
    "OrbitRender", "DatasetResult", "CurateResult", "OrbitResult", "VideoResult", "ReconResult", "TrainResult",
    "MeshScores", "OrbitEval", "FamilyEval", "VideoEval", "AssetEval", "CameraEval", "SVDModel", "MadeImage",
]  # fmt: skip

# reconstruct's keyword arguments that choose the mesh (an orbit job's own options are the others)
MESH_OPTIONS = ("method", "formats", "faces", "texture", "uv", "height", "iterations")


# ------------------------------------------------------------------------------------------------ image -> asset


@dataclass
class AssetResult:
    views: OrbitResult  # the generated views and their cameras
    mesh: ReconResult  # the reconstructed mesh, its files and report (paths as they are once in place)
    output: Path


def check_mesh_options(recon: dict) -> None:
    """Check `reconstruct` keyword arguments (the unset ones take its defaults) before any work."""
    params = inspect.signature(reconstruct).parameters
    names = inspect.signature(check_recon_options).parameters
    check_recon_options(**{name: recon.get(name, params[name].default) for name in names})


@outputs.holds_output(lambda args: args["output"])
def generate_asset(image=None, *, output: str | Path, recon: dict | None = None, **orbit_options) -> AssetResult:
    """`image` -> views (`generate_orbit(image, **orbit_options)`) -> mesh (`reconstruct(folder, **recon)`) in the
    folder `output`: input.png, frames/, orbit.mp4, transforms.json, run.json, mesh.glb, preview.png, recon.json.
    From text: no image, `prompt=` and `t2i_model=` in `orbit_options` (generate_orbit's), and prompt.png too.

    The mesh stage runs on the views' device and seed unless `recon` names its own. Every option of both stages is
    checked before any work; the folder replaces an earlier svd3d output only when views and mesh are complete."""
    out = Path(output)
    recon = {
        "device": orbit_options.get("device", defaults.DEVICE),
        "seed": orbit_options.get("seed", defaults.SEED),
        **(recon or {}),
    }

    # 1. check inputs: the mesh stage's options too, so a bad one never costs a generation; the output folder
    check_mesh_options(recon)
    outputs.check_replaceable(out)

    # 2. views, then the mesh, in one staging folder that is swapped into place when both are complete
    with outputs.replacing(out, "orbit") as tmp:
        views = generate_orbit(image, output=None, meshed=True, **orbit_options)
        prompt_png = media.png_bytes(views.prompt_image) if views.prompt_image is not None else None
        write_orbit_folder(tmp, views.input_image, views.frames, views.elevations, views.azimuths, views.c2w,
                           views.intrinsics, prompt_png=prompt_png)  # fmt: skip
        views.run["output"] = str(out)
        media.write_json(tmp / "run.json", views.run)
        outputs.write_mark(tmp, "orbit")  # the views are svd3d's: the mesh stage may replace their preview.png
        mesh = _as_placed(reconstruct_mesh(tmp, **recon), tmp, out)
        viewer.write_index(tmp, title=out.name)  # once the mesh is there and recon.json names the final paths
    views.output = out
    return AssetResult(views, mesh, out)


@outputs.holds_output(lambda args: args["output"])
def reconstruct_into(folder: str | Path, output: str | Path, **recon) -> ReconResult:
    """`reconstruct(folder, **recon)` into the folder `output`, staged and swapped in whole (an earlier svd3d
    output there is replaced): an interrupted job leaves nothing there, not even a partial mesh."""
    out = Path(output)
    outputs.check_replaceable(out)
    with outputs.replacing(out, "recon") as tmp:
        result = _as_placed(reconstruct_mesh(folder, output=tmp, **recon), tmp, out)
        viewer.write_index(tmp, title=out.name)
        return result


@outputs.holds_output(lambda args: args["output"] or args["folder"])
@functools.wraps(reconstruct_mesh, assigned=())  # its signature: check_mesh_options reads the defaults
def reconstruct(folder: str | Path, *, output: str | Path | None = None, **recon) -> ReconResult:
    """Reconstruct the object seen in a nerfstudio folder (an `svd3d orbit` or `svd3d render` output) as a mesh
    (svd3d.recon.pipeline.reconstruct, whose keyword arguments it takes), then write index.html (svd3d.viewer)
    beside its mesh.<format>, preview.png and recon.json in `output` (default: the input folder). index.html is
    one of the files svd3d adds there: one that svd3d did not write is refused before any work."""
    out = Path(output) if output is not None else Path(folder)
    if out.is_dir():
        outputs.check_addable(out, [viewer.INDEX])
    result = reconstruct_mesh(folder, output=output, **recon)
    with outputs.adding(out, "recon") as staging:
        viewer.write_index(out, staging / viewer.INDEX, title=out.name)
    return result


def _as_placed(result: ReconResult, staged: Path, out: Path) -> ReconResult:
    """A reconstruction written into the staging folder `staged`, its recon.json and files naming where they will
    be once `staged` is swapped into place at `out`."""
    moved = {str(staged): str(out)}
    result.report["input"] = moved.get(result.report["input"], result.report["input"])
    result.report["files"] = [str(out / Path(f).name) for f in result.report["files"]]
    media.write_json(staged / "recon.json", result.report)
    result.files = [out / Path(f).name for f in result.files]
    return result


# ------------------------------------------------------------------------------------------------ text -> image


def generate_image(
    prompt: str,
    t2i_model: str | Path,
    *,
    seed: int = defaults.SEED,
    steps: int | None = defaults.T2I_STEPS,
    guidance: float | None = defaults.T2I_GUIDANCE,
    size: tuple[int, int] | None = defaults.T2I_SIZE,
    suffix: str = "",
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
) -> MadeImage:
    """The image `generate_video(prompt=...)` / `generate_orbit(prompt=...)` start from, alone (to look at it before a
    long job): `prompt` + `suffix` through the diffusers text-to-image model `t2i_model` (a folder or a hub id), its
    noise drawn on the CPU from `seed`. `.image` is the PIL image, `.record` what run.json would record."""
    request = text_request(None, prompt, t2i_model, steps, guidance, size, suffix)
    dev = resolve_device(device)
    return text_to_image(request, seed=seed, device=dev, dtype=resolve_dtype(dtype, dev))


# ------------------------------------------------------------------------------------------------ mesh -> views


@dataclass
class OrbitRender:
    output: Path  # the nerfstudio folder: images/, transforms.json, optional depth/ and normals/
    orbit: str  # static, dynamic or custom
    views: int
    seconds: float


def render_orbit(
    mesh: str | Path,
    output: str | Path | None = None,
    *,
    orbit: str = defaults.RENDER_ORBIT,
    frames: int = defaults.RENDER_FRAMES,
    elevation: float = defaults.ELEVATION,
    amplitude: float = defaults.DYNAMIC_AMPLITUDE,
    seed: int = defaults.RENDER_SEED,
    elevations: list[float] | None = None,
    azimuths: list[float] | None = None,
    size: int = defaults.RENDER_SIZE,
    fit_to: str = defaults.RENDER_FIT_TO,
    depth: str = "none",
    normals: bool = False,
    supersample: int = defaults.SUPERSAMPLE,
) -> OrbitRender:
    """Render `mesh` (GLB, glTF, OBJ, PLY, STL) along an orbit (the cameras `generate_orbit` uses) into a nerfstudio
    folder [out/<mesh>-views]: images/ (RGBA on white), transforms.json, index.html, optional depth/ (png16 millimetres or npy
    metres) and normals/. Lists of `elevations` / `azimuths` make a custom orbit."""
    check_positive("frames", frames, "--frames")
    check_positive("supersample", supersample, "--supersample")
    kind, spec = build_orbit(orbit, frames, elevation, elevations, azimuths, seed=seed, amplitude=amplitude)
    out = Path(output) if output is not None else Path("out") / f"{Path(mesh).stem}-views"
    start = time.perf_counter()
    render_to_folder(mesh, spec.angles(), out, size, fit_to=fit_to, depth=depth, normals=normals,
                     supersample=supersample, index=True)  # fmt: skip
    return OrbitRender(out, kind, len(spec.angles()[1]), time.perf_counter() - start)


def evaluate_mesh(
    pred, gt, *, same_frame: bool = False, tau: float = 0.01, samples: int = 50000, resolution: int = 64
) -> MeshScores:
    """Score a mesh `pred` against a ground-truth mesh `gt` (paths or trimesh meshes): Chamfer, F-score at `tau`,
    volume IoU, normal consistency. Both are normalised to the unit cube first unless they share a frame."""
    pred, gt = (load_mesh(m, normalise=False) if isinstance(m, (str, Path)) else m for m in (pred, gt))
    return compare_meshes(pred, gt, normalise_meshes=not same_frame, tau=tau, n=samples, resolution=resolution)


# ------------------------------------------------------------------------------------------------ models, training


def prepare_model(
    model: str | Path | SVDModel | None = None,
    kind: str = "orbit",
    *,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    offload: bool = False,
    config: str | Path | None = None,
) -> SVDModel:
    """Load a model once for many jobs (pass the result as `model=` to generate_orbit / generate_asset /
    generate_video): a name, folder, sgm file or hub id (None: the bundled default for `kind`, 'orbit' or
    'video'), checked that it runs `kind`, at `dtype` on `device` as the jobs resolve them (auto: the GPU when
    there is one, float16 there), or left on the CPU when `offload`."""
    dev = resolve_device(device)
    return ready_model(model, kind, resolve_dtype(dtype, dev), dev, offload, config)


def model_entries() -> dict[str, RegistryEntry]:
    """The model names `load_model` (and --model) accept besides folders, sgm files and hub ids."""
    return entries()


def lora_entries() -> dict[str, Path]:
    """The bundled LoRA adapters `--lora` (and `loras=`) accept by name: name -> folder."""
    return adapter_entries()


@outputs.holds_output(lambda args: args["out_dir"])
def convert_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, config: str | Path | None = None, dtype: str = "float32"
) -> SVDModel:
    """An sgm single-file checkpoint (or a diffusers folder, to rewrite it at another dtype) -> a diffusers-format
    folder `out_dir`; returns the loaded model. The output is checked (and locked) before the checkpoint is read."""
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


def train(
    recipe: str | Path | Recipe,
    output: str | Path,
    *,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
    device: str = defaults.DEVICE,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a recipe (recipes/*.toml, or a Recipe) into the run folder `output`, resuming from its newest
    checkpoint when there is one. `overrides`: {"train.steps": 100} or ["train.steps=100"] (values read as TOML).
    `stop_after`: at most this many steps in this call, then save and return (0: only the phases not yet done)."""
    if stop_after is not None and stop_after < 0:
        raise SVD3DError(f"--stop-after must be >= 0, got {stop_after} (0: only the phases not yet done)")
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = dict(parse_override(text) for text in overrides)
    return _train(recipe, output, overrides=dict(overrides or {}), device=device, progress=progress,
                  stop_after=stop_after)  # fmt: skip


@dataclass
class DatasetResult:
    output: Path
    data: OrbitData | ClipData | None  # the dataset as training reads it (memory-mapped); None: another rank's job
    rank: batch.Rank = field(default_factory=batch.Rank)


DATASET_KINDS = ("procedural", "meshes", "clips", "videos")
GENERATED_DATASETS = ("procedural", "clips")  # made from a seed; the others read a source folder


def build_dataset(
    kind: str,
    output: str | Path,
    *,
    source: str | Path | None = None,
    count: int | None = None,
    size: int = defaults.DATA_SIZE,
    frames: int | None = None,
    seed: int = defaults.DATA_SEED,
    workers: int = 1,
    look: OrbitLook | Mapping | None = None,
    shapes: ProceduralSettings | Literal["basic", "varied"] | None = None,
    camera: str = "any",
) -> DatasetResult:
    """Build a training dataset into the folder `output`: `procedural` objects or `meshes` from a `source` folder
    (GLB/OBJ/PLY/STL) rendered along SV3D orbits; synthetic `clips`; or `videos` cut from a `source` folder.
    `count` (procedural, clips): how many; `frames`: per orbit [21] or clip [14]; `camera` (clips): restrict
    the camera's motion to one kind (svd3d.training.clips.CAMERA_MOTIONS: static, pan-left, zoom-in, ...).

    Orbit datasets: `look` (svd3d.training.data.OrbitLook, or a dict of its fields: orbits, elevation_range, light,
    material, framing, object_fraction; default tiny-orbit's) says how each object is shown; procedural ones also what objects are made of, `shapes`: "basic"
    (tiny-orbit's, the default), "varied" (ProceduralSettings.varied(): every training kind) or ProceduralSettings.

    `meshes` builds resume where they stopped, share the cores among `workers` processes, and under torchrun /
    accelerate launch take this rank's share of the meshes; the process that finishes last assembles the dataset
    (the others return `data=None`)."""
    out = Path(output)
    if kind not in DATASET_KINDS:
        raise SVD3DError(f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}")
    if kind in GENERATED_DATASETS:
        if source is not None:
            raise SVD3DError(f"{kind} datasets are generated; drop the SOURCE argument ({source})")
        if count is None:
            what = "objects" if kind == "procedural" else "clips"
            raise SVD3DError(f"`svd3d data {kind}` needs --count (how many {what} to make)")
    else:
        if source is None:
            raise SVD3DError(f"`svd3d data {kind}` needs a SOURCE folder")
        if count is not None:
            raise SVD3DError(f"--count is for procedural / clips datasets; {kind} uses every file in {source}")
    if workers != 1 and kind != "meshes":
        raise SVD3DError(f"--workers is for meshes datasets; drop it for {kind}")
    if look is not None and kind not in ("procedural", "meshes"):
        raise SVD3DError(f"light, material, framing and elevations are for orbit datasets; drop them for {kind}")
    if shapes is not None and kind != "procedural":
        raise SVD3DError(f"--shapes is for procedural datasets (meshes bring their own); drop it for {kind}")
    if camera != "any" and kind != "clips":
        raise SVD3DError(f"--camera is for clips datasets; drop it for {kind}")
    if isinstance(look, Mapping):
        unknown = sorted(set(look) - {f.name for f in fields(OrbitLook)})
        if unknown:
            raise SVD3DError(
                f"unknown look option(s) {', '.join(unknown)}; known: {', '.join(f.name for f in fields(OrbitLook))}"
            )
        look = OrbitLook(**look)
    if isinstance(shapes, str):
        if shapes not in ("basic", "varied"):
            raise SVD3DError(f"shapes must be 'basic' or 'varied', got {shapes!r}")
        shapes = ProceduralSettings.varied() if shapes == "varied" else ProceduralSettings()
    shown = {f.name: getattr(look, f.name) for f in fields(OrbitLook)} if look is not None else {}
    sized = {"size": size} | ({"frames": frames} if frames is not None else {}) | shown
    if kind in ("procedural", "meshes"):
        RenderOrbitSettings(**sized).check()
        (shapes or ProceduralSettings()).check()
    check_dataset_output(out)  # before any work
    if kind == "meshes":  # resumable, shardable: each process locks only to assemble (training.meshes)
        rank = batch.Rank.from_env()
        threads = batch.rank_threads(rank)
        if threads is not None:
            torch.set_num_threads(threads)
            set_ray_threads(threads)
        data = render_orbit_dataset(source, out, settings=RenderOrbitSettings(**sized), seed=seed, workers=workers,
                                    rank=rank)  # fmt: skip
        return DatasetResult(out, load_dataset(out) if data is not None else None, rank)
    with outputs.locked(out):
        if kind == "procedural":
            procedural_orbit_dataset(count, out, settings=RenderOrbitSettings(**sized), generator=shapes, seed=seed)
        elif kind == "clips":
            synthetic_clips(count, **sized, seed=seed, camera=camera).save(out)
        else:
            load_video_folder(source, **sized).save(out)
    return DatasetResult(out, load_dataset(out))


@outputs.holds_output(lambda args: args["output"])
def curate_videos(
    videos: str | Path,
    output: str | Path,
    *,
    cut_threshold: float = defaults.CURATE_CUT_THRESHOLD,
    min_motion: float = defaults.CURATE_MIN_MOTION,
    max_motion: float = defaults.CURATE_MAX_MOTION,
    max_chaos: float = defaults.CURATE_MAX_CHAOS,
    min_frames: int = defaults.CURATE_MIN_FRAMES,
    flow: str = defaults.CURATE_FLOW,
    progress: bool = True,
) -> CurateResult:
    """Curate the videos of the folder `videos` (video files, GIF / WebP, folders of numbered frames) into training
    clips (svd3d.training.curate): split each at its cuts, measure each clip's motion and chaos with dense optical
    flow, and write the kept clips (MP4) and curation.json (every clip, kept or dropped, with its span, scores and
    reason) into the folder `output`, which `build_dataset("videos", ..., source=output)` reads.

    Motion thresholds are in pixels per frame on frames scaled to a 128-pixel shorter side. Every input and
    threshold is checked, and every video opened, before any work; the folder is staged and swapped into place
    when complete, replacing only an earlier svd3d output."""
    settings = CurateSettings(cut_threshold=cut_threshold, min_motion=min_motion, max_motion=max_motion,
                              max_chaos=max_chaos, min_frames=min_frames, flow=flow)  # fmt: skip
    return curate(videos, output, settings, progress=progress)


# ------------------------------------------------------------------------------------------------ many inputs


def run_batch(
    kind: str,
    inputs: list[str | Path],
    output: str | Path | None = None,
    *,
    options: dict,
    item_settings=None,
    allowed: set[str] | None = None,
    fmt: str | None = None,
    progress: bool = True,
) -> batch.BatchSummary:
    """Run `kind` ('orbit', 'video' or 'recon') on many inputs (paths, folders, glob patterns, .txt / .jsonl
    manifests) into ROOT/<name> under `output` [out], recording each item in ROOT/results.jsonl (svd3d.batch).

    `options` are the job's keyword arguments for every item (an orbit's may hold the mesh options and
    `mesh=False` for views only); `item_settings(item) -> dict` turns a manifest line's own options (`allowed`
    keys) into such arguments. The model is loaded once; under torchrun / accelerate launch this process takes its
    share of the items, on its own device and threads. A failed item is recorded and the batch goes on."""
    root = Path(output) if output is not None else Path("out")
    rank = batch.Rank.from_env()
    options = dict(options)

    # 1. check everything before any work: the output kind, every manifest line, the mesh options
    if kind == "video" and output is not None and root.suffix.lower() in (".mp4", ".gif", ".webp"):
        single = len(inputs) == 1 and Path(inputs[0]).is_dir()
        given = f"{inputs[0]} is a folder, not a file" if single else "several inputs make a batch"
        raise SVD3DError(f"{given}: a batch writes a clip per input under -o ROOT (ROOT/<name>.{fmt}); pass -o a "
                         f"folder, not {output}")  # fmt: skip
    text = [k for k in ("prompt", "t2i_model", "t2i_steps", "t2i_guidance", "t2i_size") if options.get(k) is not None]
    if text:
        raise SVD3DError(f"--{text[0].replace('_', '-')} makes one job from text and cannot be combined with several "
                         "inputs (a batch); run one command per prompt, with no IMAGE")  # fmt: skip
    items = batch.collect_inputs([str(p) for p in inputs], kind, allowed)
    if item_settings is not None:
        items = [replace(item, settings=item_settings(item)) for item in items]
    if kind == "recon" or (kind == "orbit" and options.get("mesh", True)):
        check_mesh_options({k: v for k, v in options.items() if k in (*MESH_OPTIONS, "device", "seed")})

    # 2. this process's threads and device; the model, once
    threads = batch.rank_threads(rank)
    if threads is not None:
        torch.set_num_threads(threads)
    options["device"] = batch.rank_device(options.get("device", defaults.DEVICE), rank)
    fingerprint = None
    if kind != "recon":
        options["model"] = prepare_model(options.get("model"), kind, dtype=options.get("dtype", defaults.DTYPE),
                                         device=options["device"], offload=options.get("offload", False),
                                         config=options.get("config"))  # fmt: skip
        fingerprint = options["model"].fingerprint

    # 3. the items
    job = {"orbit": _orbit_item, "video": _video_item, "recon": _recon_item}[kind]
    return batch.run_batch(kind, items, root, job, options=options, fmt=fmt, model_fingerprint=fingerprint,
                           rank=rank, progress=progress)  # fmt: skip


def _orbit_item(image: Path, out: Path, settings: dict) -> dict:
    """One orbit item: views, or views and mesh (`generate_asset`), in the folder `out`; returns its timings."""
    options = dict(settings)
    mesh = options.pop("mesh", True)
    recon = {k: options.pop(k) for k in MESH_OPTIONS if k in options}
    if not mesh:
        return generate_orbit(image, output=out, progress=False, **options).timings
    asset = generate_asset(image, output=out, recon={**recon, "progress": False}, progress=False, **options)
    return {**asset.views.timings, "mesh": round(sum(asset.mesh.report["timings_s"].values()), 4)}


def _video_item(image: Path, out: Path, settings: dict) -> dict:
    """One video item: a clip file, or a folder of PNG frames."""
    return generate_video(image, output=out, progress=False, **settings).timings


def _recon_item(folder: Path, out: Path, settings: dict) -> dict:
    """One recon item: the mesh of the views in `folder`, written into a new folder `out` (staged and swapped in
    whole, as an orbit's folder is, so an item killed half-way leaves nothing that blocks its redo)."""
    return reconstruct_into(folder, out, progress=False, **settings).report["timings_s"]
