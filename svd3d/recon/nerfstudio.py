"""nerfstudio's nerfacto as a reconstruction backend: `svd3d recon --method nerfacto` (pip install 'svd3d[nerfstudio]').

Three steps, each usable alone:

    write_dataset(views, folder)      a folder nerfstudio's own `nerfstudio-data` dataparser reads as it is
    train_nerfacto(folder, ...)       nerfacto trained from Python (nerfstudio's TrainerConfig), returns its run folder
    nerfacto_mesh(run, ...)           a trimesh in svd3d's world frame, from the trained field

Choices, stated once:

- Frames: svd3d's world *is* nerfstudio's world. The dataparser runs with orientation_method "none",
  center_method "none", auto_scale_poses False and scale_factor 1 (transforms.json also carries
  ``orientation_override: none``), so the cameras reach nerfacto unchanged. Mesh export still reads the transform
  and scale nerfstudio recorded (dataparser_transforms.json) and inverts them, so it stays right if they change.
- The object: RGBA images, alpha = the ViewSet's masks (object coverage), colour un-composited from white.
  nerfstudio's ``mask_path`` means "pixels to ignore" and is never written. nerfacto blends the ground truth and
  its render on white (``background="white"``), or on one random colour per ray ("random": forces the field's
  opacity to match alpha; 300 CPU iterations on the bunny gave accumulation 0.98 inside the object against 0.37,
  volume IoU 0.56 against 0.21, but Chamfer 0.025 against 0.011, from extra surfaces).
- The scene: a bounded box of half side `SCENE_SCALE` around the [-0.5, 0.5]^3 object (scene contraction off,
  density zero outside), uniform initial samples between near and far planes taken from the camera distances;
  camera optimisation off (the cameras are exact); every view is a training view (eval_mode "all").
- Offline: torchmetrics' LPIPS (which downloads AlexNet weights when nerfacto is built) is replaced by a stub
  that returns NaN, the viewer is off (vis "tensorboard": event files only) and no evaluation runs in training.
- Checkpoints load with torch.load(weights_only=True) allowing numpy's scalar types: nerfstudio 1.1.5's own loader
  fails on torch >= 2.6 (its checkpoints hold numpy float64 learning rates; nerfstudio issue #3683).
- Mesh: marching cubes on the field's density over the unit cube (method "density", the default) at the iso-level
  whose silhouettes best match the training masks, or nerfstudio's own TSDF exporter fusing rendered depth
  (method "tsdf"; slower on a CPU: it renders every view). Either way mapped back through the dataparser transform.

Runs belong on a GPU: nerfacto costs seconds per iteration on a CPU (see `DEFAULT_ITERATIONS`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from svd3d import outputs, signals
from svd3d.cameras import CameraFrame, angles_from_c2w, read_transforms, transforms_dict
from svd3d.errors import SVD3DError
from svd3d.geometry import marching_cubes
from svd3d.media import write_json
from svd3d.recon.views import ViewSet, load_views
from svd3d.render import render_silhouettes

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)

NERFSTUDIO_VERSION = "1.1.5"
INSTALL_HINT = (
    f"pip install 'svd3d[nerfstudio]' (nerfstudio {NERFSTUDIO_VERSION}) where torch and torchvision match: "
    "on x86_64 `pip install torch==2.14.1 torchvision==0.29.1` first (PyPI's torchvision does not import beside "
    "the CPU torch 2.13 build; a separate virtualenv keeps svd3d's main one small)"
)
SCENE_SCALE = 0.6  # half side of nerfstudio's scene box, world units: the [-0.5, 0.5]^3 object plus a 0.1 margin
DEFAULT_ITERATIONS = 5000  # minutes on a GPU; on 2 busy CPU cores ~5 s each at 1024 rays (300 took 26 minutes)
DEFAULT_RAYS_PER_BATCH = 4096  # nerfacto's own
DEFAULT_RESOLUTION = 256  # marching-cubes samples per side of the unit cube
AUTO_LEVELS = 16  # iso-levels tried when the density export chooses its own (choose_density_threshold)
ExportMethod = Literal["density", "tsdf"]
Background = Literal["white", "random"]  # what nerfacto blends the RGBA views and its renders on for the loss
DATAPARSER_SETTINGS = {
    "orientation_method": "none",
    "center_method": "none",
    "auto_scale_poses": False,
    "scale_factor": 1.0,
    "scene_scale": SCENE_SCALE,
    "eval_mode": "all",
    "downscale_factor": 1,
}


def require_nerfstudio():
    """Import nerfstudio, or raise SVD3DError with the install hint."""
    try:
        import nerfstudio
        from nerfstudio.configs import method_configs  # noqa: F401  (imports torchvision: fails on a mismatch)
    except (ImportError, RuntimeError, OSError) as err:
        raise SVD3DError(f"--method nerfacto needs nerfstudio ({type(err).__name__}: {err}); {INSTALL_HINT}") from None
    return nerfstudio


# ------------------------------------------------------------------------------------------------ dataset


def _straight_rgba(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour composited on white and (H, W) coverage in [0, 1] -> (H, W, 4) uint8 straight RGBA.

    Un-composites the colour so that nerfstudio's blend, rgb * a + white * (1 - a), gives the view back."""
    alpha = np.round(np.clip(mask, 0.0, 1.0) * 255.0) / 255.0
    a = alpha[..., None]
    rgb = np.where(a > 0, (image - (1.0 - a)) / np.maximum(a, 1e-6), 1.0)
    out = np.concatenate([np.clip(rgb, 0.0, 1.0), a], axis=-1)
    return np.round(out * 255.0).astype(np.uint8)


def near_far(c2w: np.ndarray, scene_scale: float = SCENE_SCALE) -> tuple[float, float]:
    """Near and far planes that cover the scene box from every camera: (N, 4, 4) c2w -> (near, far)."""
    radius = np.linalg.norm(np.asarray(c2w)[:, :3, 3], axis=-1)
    corner = math.sqrt(3.0) * scene_scale
    near = max(0.05, float(radius.min()) - corner)
    return near, float(radius.max()) + corner


def ns_train_command(folder: str | Path, c2w: np.ndarray) -> str:
    """The `ns-train` command line that trains on a `write_dataset` folder with `nerfacto_config`'s settings."""
    near, far = near_far(c2w)
    return (
        f"ns-train nerfacto --data {shlex.quote(str(Path(folder).resolve()))} --pipeline.model.background-color white "
        "--pipeline.model.disable-scene-contraction True --pipeline.model.proposal-initial-sampler uniform "
        f"--pipeline.model.near-plane {near:.4f} --pipeline.model.far-plane {far:.4f} "
        "--pipeline.model.camera-optimizer.mode off nerfstudio-data --orientation-method none "
        f"--center-method none --auto-scale-poses False --scene-scale {SCENE_SCALE} --eval-mode all"
    )


def write_dataset(views: ViewSet, folder: str | Path) -> Path:
    """Write `views` as a nerfstudio folder (images/000.png ... RGBA, transforms.json); returns the folder.

    nerfstudio sorts frames by file name, so the zero-padded names keep the ViewSet's order. Cameras are the
    ViewSet's OpenGL camera-to-world matrices in svd3d's world frame, intrinsics its pinhole ones. The folder is
    staged and swapped into place when complete (an earlier svd3d output there is replaced; svd3d.outputs)."""
    from PIL import Image

    # 1. check inputs
    folder = Path(folder)
    n = len(views)
    if n < 1:
        raise SVD3DError("write_dataset needs at least one view")
    intr = views.intrinsics
    if views.images.shape != (n, intr.height, intr.width, 3) or views.masks.shape != (n, intr.height, intr.width):
        raise SVD3DError(
            f"views hold images {views.images.shape} and masks {views.masks.shape}, but the intrinsics say "
            f"{intr.width}x{intr.height}"
        )
    outputs.check_replaceable(folder)
    # 2. images and cameras
    width = max(3, len(str(n - 1)))
    elev, azim, _ = angles_from_c2w(views.c2w)
    with outputs.replacing(folder, "nerfstudio dataset") as tmp:
        (tmp / "images").mkdir()
        frames = []
        for i in range(n):
            name = f"images/{i:0{width}d}.png"
            Image.fromarray(_straight_rgba(views.images[i], views.masks[i]), "RGBA").save(tmp / name)
            frames.append(CameraFrame(name, views.c2w[i], float(elev[i]), float(azim[i])))
        data = transforms_dict(
            frames,
            intr,
            {
                "nerfstudio": {
                    "note": "RGBA images, alpha = object coverage (no mask_path: nerfstudio reads it as pixels "
                    "to ignore); train with the dataparser settings below so cameras are used unchanged",
                    "dataparser": DATAPARSER_SETTINGS,
                    "ns_train": ns_train_command(folder, views.c2w),
                    "source_names": list(views.names),
                }
            },
        )
        data["orientation_override"] = "none"  # honoured by the nerfstudio dataparser whatever its config says
        write_json(tmp / "transforms.json", data)
    return folder


# ------------------------------------------------------------------------------------------------ training


def _torch_device(device) -> str:
    """'cpu' | 'cuda' | 'mps' for nerfstudio's MachineConfig (which always trains on cuda:0)."""
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError):
        raise SVD3DError(f"unknown device {device!r}; use cpu, cuda or mps") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise SVD3DError(f"nerfstudio trains on cpu, cuda or mps, not {device!r}")
    if dev.type == "cuda" and dev.index not in (None, 0):
        raise SVD3DError(
            f"nerfstudio always trains on cuda:0; for {device!r} set CUDA_VISIBLE_DEVICES={dev.index} and use cuda"
        )
    return dev.type


def _hash_grid_implementation(device_type: str) -> str:
    if device_type == "cuda":
        try:
            import tinycudann  # noqa: F401

            return "tcnn"
        except ImportError:
            pass
    return "torch"


@contextlib.contextmanager
def offline_metrics():
    """nerfacto builds torchmetrics' LPIPS when it is set up, which downloads AlexNet weights: use a stub instead.

    The stub returns NaN; svd3d's training runs no evaluation, so it is never called there."""
    import torch
    from torchmetrics.image import lpip

    class _NoLPIPS(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return torch.tensor(float("nan"))

    original = lpip.LearnedPerceptualImagePatchSimilarity
    lpip.LearnedPerceptualImagePatchSimilarity = lambda *args, **kwargs: _NoLPIPS()
    try:
        yield
    finally:
        lpip.LearnedPerceptualImagePatchSimilarity = original


def dataparser_config(dataset_folder: str | Path):
    """nerfstudio's NerfstudioDataParserConfig for a `write_dataset` folder: cameras used as they are."""
    require_nerfstudio()
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    return NerfstudioDataParserConfig(data=Path(dataset_folder), **DATAPARSER_SETTINGS)


def nerfacto_config(
    dataset_folder: str | Path,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    device: str = "cuda",
    output_dir: str | Path = "outputs",
    seed: int = 0,
    rays_per_batch: int = DEFAULT_RAYS_PER_BATCH,
    background: Background = "white",
):
    """nerfstudio's own nerfacto TrainerConfig (method_configs["nerfacto"]), set up for a `write_dataset` folder."""
    require_nerfstudio()
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
    from nerfstudio.configs.method_configs import method_configs
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig

    dataset_folder = Path(dataset_folder).resolve()
    _, frames = read_transforms(dataset_folder / "transforms.json")
    near, far = near_far(np.stack([f.c2w for f in frames]))
    device_type = _torch_device(device)

    config = copy.deepcopy(method_configs["nerfacto"])
    config.output_dir = Path(output_dir).resolve()
    config.experiment_name = "svd3d"
    config.vis = "tensorboard"  # no viewer (a web server), no wandb (a login): event files only
    config.max_num_iterations = int(iterations)
    config.steps_per_save = int(iterations)
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 0
    config.mixed_precision = device_type == "cuda"
    config.machine.seed = int(seed)
    config.machine.device_type = device_type
    config.machine.num_devices = 1
    config.logging.steps_per_log = max(1, min(100, int(iterations) // 20))
    # the single-process data manager: nerfacto's default ParallelDataManager sets the "spawn" start method
    config.pipeline.datamanager = VanillaDataManagerConfig(
        data=dataset_folder,
        dataparser=dataparser_config(dataset_folder),
        train_num_rays_per_batch=int(rays_per_batch),
        eval_num_rays_per_batch=int(rays_per_batch),
    )
    model = config.pipeline.model
    if background not in ("white", "random"):
        raise SVD3DError(f"background must be 'white' or 'random', got {background!r}")
    model.background_color = background
    model.disable_scene_contraction = True  # a bounded object: the hash grid spans the scene box only
    model.proposal_initial_sampler = "uniform"  # "piecewise" is for unbounded scenes
    model.near_plane, model.far_plane = near, far
    model.camera_optimizer = CameraOptimizerConfig(mode="off")  # svd3d's cameras are exact
    model.implementation = _hash_grid_implementation(device_type)
    config.optimizers.pop("camera_opt", None)
    return config


def train_nerfacto(
    dataset_folder: str | Path,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    device: str = "cuda",
    output_dir: str | Path,
    seed: int = 0,
    rays_per_batch: int = DEFAULT_RAYS_PER_BATCH,
    background: Background = "white",
) -> Path:
    """Train nerfacto on a `write_dataset` folder; returns the run folder (config.yml, dataparser_transforms.json,
    nerfstudio_models/step-*.ckpt) under output_dir/svd3d/nerfacto/<timestamp>. Seeds python, numpy and torch
    as nerfstudio's train.py does; `background` as in the module docstring."""
    # 1. check inputs
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise SVD3DError(f"iterations must be a positive integer, got {iterations!r}")
    if not isinstance(rays_per_batch, int) or rays_per_batch < 1:
        raise SVD3DError(f"rays_per_batch must be a positive integer, got {rays_per_batch!r}")
    if not (Path(dataset_folder) / "transforms.json").is_file():
        raise SVD3DError(f"{dataset_folder} has no transforms.json; write it with svd3d.recon.nerfstudio.write_dataset")
    config = nerfacto_config(
        dataset_folder,
        iterations=iterations,
        device=device,
        output_dir=output_dir,
        seed=seed,
        rays_per_batch=rays_per_batch,
        background=background,
    )
    # 2. what nerfstudio's train.py does for one process: timestamp, config.yml, seeds, Trainer
    import torch
    from nerfstudio.utils import writer

    config.set_timestamp()
    config.save_config()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    log.info(
        "nerfacto: %d iterations of %d rays on %s (%s hash grid), near %.3f far %.3f; run folder %s",
        iterations,
        rays_per_batch,
        config.machine.device_type,
        config.pipeline.model.implementation,
        config.pipeline.model.near_plane,
        config.pipeline.model.far_plane,
        config.get_base_dir(),
    )
    started = time.perf_counter()
    try:
        with offline_metrics():
            trainer = config.setup(local_rank=0, world_size=1)
            trainer.setup()
        trainer.train()
    finally:
        writer.EVENT_WRITERS.clear()  # nerfstudio's writers are module globals; a second run would append more
        writer.EVENT_STORAGE.clear()
    log.info("nerfacto: trained in %.1f s", time.perf_counter() - started)
    return config.get_base_dir()


# ------------------------------------------------------------------------------------------------ export


@dataclass(frozen=True)
class DataparserTransform:
    """nerfstudio's record of what its dataparser did: ns = scale * (transform @ [p; 1]) for a world point p."""

    transform: np.ndarray  # (3, 4) float64
    scale: float

    @staticmethod
    def read(path: str | Path) -> DataparserTransform:
        """Read dataparser_transforms.json ({"transform": 3x4, "scale": s})."""
        try:
            data = json.loads(Path(path).read_text())
            transform = np.asarray(data["transform"], dtype=np.float64)
            scale = float(data["scale"])
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise SVD3DError(f"cannot read nerfstudio's {path} ({type(err).__name__}: {err})") from None
        if transform.shape != (3, 4) or not np.isfinite(transform).all() or not scale > 0:
            raise SVD3DError(f"{path}: expected a finite 3x4 transform and a positive scale")
        return DataparserTransform(transform, scale)

    def to_nerfstudio(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) svd3d world -> (N, 3) nerfstudio coordinates."""
        return self.scale * (np.asarray(points) @ self.transform[:, :3].T + self.transform[:, 3])

    def from_nerfstudio(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) nerfstudio coordinates -> (N, 3) svd3d world."""
        inverse = np.linalg.inv(self.transform[:, :3])
        return (np.asarray(points) / self.scale - self.transform[:, 3]) @ inverse.T


def _config_path(trained: str | Path) -> Path:
    trained = Path(trained)
    path = trained if trained.suffix == ".yml" else trained / "config.yml"
    if not path.is_file():
        raise SVD3DError(f"{trained} is not a nerfstudio run: {path} does not exist (train_nerfacto returns one)")
    return path


def _load_checkpoint(path: Path) -> dict:
    """torch.load of a nerfstudio checkpoint with weights_only=True (torch >= 2.6's default).

    nerfstudio 1.1.5's own loader (eval_utils.eval_load_checkpoint) fails there: its checkpoints hold numpy float64
    learning rates (nerfstudio issue #3683). Those numpy scalar types are allowed here, and nothing else."""
    import torch

    scalar = np.float64(0.0).__reduce__()[0]  # what pickle stores: numpy.core (numpy 2: numpy._core).multiarray.scalar
    allowed = [scalar, np.dtype, type(np.dtype(np.float64))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_pipeline(trained: str | Path, device: str = "cpu"):
    """(nerfstudio pipeline in eval mode with the latest checkpoint, DataparserTransform) of a run folder."""
    require_nerfstudio()
    import yaml

    config_path = _config_path(trained)
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)  # nerfstudio's own format (python objects)
    checkpoints = sorted((config_path.parent / config.relative_model_dir).glob("step-*.ckpt"))
    if not checkpoints:
        raise SVD3DError(f"{config_path.parent} holds no checkpoint (nerfstudio_models/step-*.ckpt)")
    device_type = _torch_device(device)
    with offline_metrics():
        pipeline = config.pipeline.setup(device=device_type, test_mode="inference")
    pipeline.eval()
    state = _load_checkpoint(checkpoints[-1])  # zero-padded step numbers: the last name is the latest step
    pipeline.load_pipeline(state["pipeline"], state["step"])
    log.info("nerfacto: loaded %s (step %d)", checkpoints[-1], state["step"])
    return pipeline, DataparserTransform.read(config_path.parent / "dataparser_transforms.json")


def _density_grid(pipeline, dp: DataparserTransform, resolution: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Density on a resolution^3 grid of world points over [-0.5, 0.5]^3: ((R, R, R) float32, (R,) axis)."""
    import torch

    axis = np.linspace(-0.5, 0.5, resolution)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)  # (R^3, 3) world
    ns_points = torch.from_numpy(dp.to_nerfstudio(grid).astype(np.float32))
    field = pipeline.model.field
    out = np.empty(len(grid), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(grid), chunk):
            pts = ns_points[start : start + chunk].to(pipeline.device)
            out[start : start + chunk] = field.density_fn(pts).reshape(-1).float().cpu().numpy()
    return out.reshape(resolution, resolution, resolution), axis


def _marching_cubes(density: np.ndarray, axis: np.ndarray, level: float):
    """Surface where (R, R, R) density on the world grid axis^3 crosses `level`, normals outward; None if none."""
    trimesh = signals.import_whole("trimesh")

    if not density.max() > level:
        return None
    step = float(axis[1] - axis[0])
    verts, faces = marching_cubes(density, level, (step, step, step))  # zero-padded: closed at the cube's faces
    return trimesh.Trimesh(verts - step + axis[0], faces, process=False)  # padded index 1 is axis[0]


def choose_density_threshold(
    density: np.ndarray, axis: np.ndarray, masks: np.ndarray, c2w: np.ndarray, intrinsics, levels: int = AUTO_LEVELS
) -> tuple[float, float]:
    """The iso-level whose surface best reproduces the views' silhouettes: (level, mean silhouette IoU).

    density: (R, R, R) on the world grid axis^3 (svd3d's frame); masks (N, H, W) object coverage seen by cameras
    c2w (N, 4, 4) with `intrinsics`. Tries `levels` levels from 1e-3 to 0.9 of the peak density, geometrically
    spaced, then 4 more between the best one's neighbours, on a grid of at most 128 samples a side. No fixed level
    fits every run: the density keeps growing with training (300 CPU iterations: peak ~40, best level ~2)."""
    peak = float(density.max())
    if not peak > 0:
        raise SVD3DError("the trained field has no density inside the unit cube: train longer")
    stride = max(1, math.ceil(len(axis) / 128))
    coarse, coarse_axis = density[::stride, ::stride, ::stride], axis[::stride]
    target = np.asarray(masks) > 0.5

    def score(level: float) -> float:
        mesh = _marching_cubes(coarse, coarse_axis, level)
        if mesh is None or len(mesh.faces) == 0:
            return -1.0
        seen = render_silhouettes(mesh, c2w, intrinsics)  # (N, H, W) bool
        return float(((seen & target).sum(axis=(1, 2)) / np.maximum((seen | target).sum(axis=(1, 2)), 1)).mean())

    coarse_levels = peak * np.geomspace(1e-3, 0.9, levels)
    ratio = float(coarse_levels[1] / coarse_levels[0])
    scores = {float(level): score(float(level)) for level in coarse_levels}
    best = max(scores, key=scores.get)
    for level in best * np.geomspace(1 / ratio, ratio, 7)[[1, 2, 4, 5]]:  # refine between the neighbours
        scores[float(level)] = score(float(level))
    best = max(scores, key=scores.get)
    return best, scores[best]


def _density_mesh(pipeline, dp, resolution: int, threshold: float | None, chunk: int):
    density, axis = _density_grid(pipeline, dp, resolution, chunk)
    if threshold is None:
        views = load_views(pipeline.datamanager.config.data)  # the training dataset, svd3d's frame
        threshold, iou = choose_density_threshold(density, axis, views.masks, views.c2w, views.intrinsics)
        log.info("nerfacto density: iso-level %.3g chosen (mean silhouette IoU %.3f against the views)", threshold, iou)
    log.info(
        "nerfacto density over the unit cube: max %.3g, %.2f%% of %d^3 samples above %.3g",
        density.max(),
        100.0 * (density > threshold).mean(),
        resolution,
        threshold,
    )
    mesh = _marching_cubes(density, axis, threshold)
    if mesh is None:
        raise SVD3DError(
            f"the trained field's density never reaches the threshold {threshold:g} inside the unit cube "
            f"(max {density.max():.3g}): train longer, or lower density_threshold"
        )
    return mesh


def _tsdf_mesh(pipeline, dp, resolution: int, work: Path):
    trimesh = signals.import_whole("trimesh")
    from nerfstudio.exporter.tsdf_utils import export_tsdf_mesh

    corners = np.array(np.meshgrid([-0.5, 0.5], [-0.5, 0.5], [-0.5, 0.5], indexing="ij")).reshape(3, -1).T
    ns_corners = dp.to_nerfstudio(corners)
    work.mkdir(parents=True, exist_ok=True)
    try:
        export_tsdf_mesh(
            pipeline,
            work,
            downscale_factor=1,
            resolution=int(resolution),
            use_bounding_box=True,
            bounding_box_min=tuple(float(v) for v in ns_corners.min(axis=0)),
            bounding_box_max=tuple(float(v) for v in ns_corners.max(axis=0)),
        )
    except ValueError as err:  # skimage's marching cubes: the TSDF never crosses zero
        raise SVD3DError(f"nerfacto's tsdf export found no surface in the unit cube ({err}): train longer") from None
    mesh = trimesh.load(work / "tsdf_mesh.ply", process=False, force="mesh")
    mesh.vertices = dp.from_nerfstudio(np.asarray(mesh.vertices))
    return mesh


def nerfacto_mesh(
    trained: str | Path,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    method: ExportMethod = "density",
    density_threshold: float | None = None,
    device: str = "cpu",
    chunk: int = 1 << 17,
) -> trimesh.Trimesh:
    """The surface of a trained nerfacto run (folder or its config.yml) as a trimesh in svd3d's world frame.

    method "density": marching cubes on the field's density sampled on a resolution^3 grid over [-0.5, 0.5]^3
    (world points mapped into nerfstudio's frame through dataparser_transforms.json), at `density_threshold`, or
    with None at the level whose silhouettes best match the training views (`choose_density_threshold`).
    method "tsdf": nerfstudio's own exporter (nerfstudio.exporter.tsdf_utils.export_tsdf_mesh) fuses the rendered
    depth of every training view into a resolution^3 TSDF over the unit cube; its mesh is mapped back to svd3d's
    world. Uncoloured either way (svd3d bakes the texture from the views)."""
    if method not in ("density", "tsdf"):
        raise SVD3DError(f"unknown mesh export method {method!r}; use 'density' or 'tsdf'")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 8 <= resolution <= 1024:
        raise SVD3DError(f"resolution must be an integer from 8 to 1024, got {resolution!r}")
    _config_path(trained)
    started = time.perf_counter()
    pipeline, dp = load_pipeline(trained, device)
    if method == "density":
        threshold = None if density_threshold is None else float(density_threshold)
        mesh = _density_mesh(pipeline, dp, resolution, threshold, chunk)
    else:
        mesh = _tsdf_mesh(pipeline, dp, resolution, _config_path(trained).parent / "tsdf")
    if len(mesh.faces) == 0:
        raise SVD3DError(f"nerfacto's {method} export found no surface in the unit cube: train longer")
    log.info("nerfacto mesh (%s, %d^3): %d faces in %.1f s", method, resolution, len(mesh.faces),
             time.perf_counter() - started)  # fmt: skip
    return mesh


# ------------------------------------------------------------------------------------------------ all of it


def reconstruct_nerfacto(
    views: ViewSet,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    device: str = "cuda",
    workdir: str | Path,
    seed: int = 0,
    rays_per_batch: int = DEFAULT_RAYS_PER_BATCH,
    resolution: int = DEFAULT_RESOLUTION,
    export: ExportMethod = "density",
) -> trimesh.Trimesh:
    """Views -> nerfstudio dataset (workdir/data) -> nerfacto (workdir/outputs) -> mesh in svd3d's world frame."""
    require_nerfstudio()
    workdir = Path(workdir)
    if _torch_device(device) == "cpu":
        log.warning("nerfacto on the CPU: ~%d s per iteration of %d rays on 2 cores, %d iterations; it is GPU work",
                    max(1, round(5 * rays_per_batch / 1024)), rays_per_batch, iterations)  # fmt: skip
    dataset = write_dataset(views, workdir / "data")
    run = train_nerfacto(
        dataset,
        iterations=iterations,
        device=device,
        output_dir=workdir / "outputs",
        seed=seed,
        rays_per_batch=rays_per_batch,
    )
    return nerfacto_mesh(run, resolution=resolution, method=export, device=device)
