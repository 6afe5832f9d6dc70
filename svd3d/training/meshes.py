"""Orbit datasets rendered from meshes: one mesh along seeded orbits (`render_object_orbits`, which procedural
objects use too) and a folder of mesh files (`render_orbit_dataset`), in the format of svd3d.training.data."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from svd3d import outputs, signals
from svd3d.batch import Rank, rank_threads, shard
from svd3d.cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS, DynamicOrbit, StaticOrbit, orbit_c2w
from svd3d.errors import SVD3DError
from svd3d.geometry import MESH_SUFFIXES, load_mesh, set_ray_threads
from svd3d.outputs import atomic_file
from svd3d.render import AMBIENT, MATTE, HeadLight, Light, Material, light_record, render_views
from svd3d.training.data import OrbitBuffer, OrbitData, RenderOrbitSettings, check_dataset_output, whole_number

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)


def object_rng(seed: int, index: int) -> np.random.Generator:
    """Object `index`'s own generator: its draws do not depend on which other objects were made or skipped."""
    return np.random.default_rng([int(seed), int(index)])


# ------------------------------------------------------------------------------------------------ looks

# Camera-fixed lights (svd3d.render.HeadLight), by direction in the camera's frame: azimuth about the camera's up
# axis, 0 straight from the camera, negative from its left; elevation above its horizontal plane. The renderer's
# own headlight is at (-19.3, 23.0). `light="varied"` draws from the TRAIN ranges only; the held-out family
# (svd3d.eval.family) is lit from the HELD_OUT azimuths, on the right, where no training light ever comes from.
TRAIN_LIGHT_AZIMUTH = (-70.0, 15.0)  # degrees
TRAIN_LIGHT_ELEVATION = (0.0, 60.0)
HELD_OUT_LIGHT_AZIMUTH = (35.0, 70.0)
HELD_OUT_LIGHT_ELEVATION = (5.0, 45.0)
LIGHT_INTENSITY = (0.7, 1.3)  # svd3d.render: scales the light, not the ambient part
LIGHT_AMBIENT = (0.1, 0.35)  # the renderer's default is 0.2
GLOSSY_SPECULAR = (0.15, 0.5)  # material="varied": half the objects glossy, highlight strength uniform in this range
GLOSSY_SHININESS = (8.0, 64.0)  # and sharpness log-uniform in this one
MAX_FRAMED_RADIUS = 0.7  # framing "input" never scales an object's farthest point beyond this (cameras at 2.0)


@dataclass(frozen=True)
class Lighting:
    """One orbit's light: what svd3d.render's light, ambient and intensity arguments get."""

    light: Light = "headlight"
    ambient: float = AMBIENT
    intensity: float = 1.0

    def record(self) -> dict:
        return {"light": light_record(self.light), "ambient": round(self.ambient, 4),
                "intensity": round(self.intensity, 4)}  # fmt: skip


def head_light(azimuth: float, elevation: float) -> HeadLight:
    """The camera-fixed light from (azimuth, elevation) degrees in the camera's frame (see TRAIN_LIGHT_AZIMUTH)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return HeadLight((math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)))


def light_angles(light: HeadLight) -> tuple[float, float]:
    """Inverse of head_light: (azimuth, elevation) in degrees of a camera-fixed light's direction."""
    x, y, z = np.asarray(light.direction, float) / np.linalg.norm(light.direction)
    return math.degrees(math.atan2(x, z)), math.degrees(math.asin(float(np.clip(y, -1, 1))))


def draw_lighting(rng: np.random.Generator, azimuths=TRAIN_LIGHT_AZIMUTH, elevations=TRAIN_LIGHT_ELEVATION) -> Lighting:
    """A seeded camera-fixed light: direction uniform in the given azimuth and elevation ranges (degrees),
    intensity in LIGHT_INTENSITY, ambient in LIGHT_AMBIENT."""
    light = head_light(rng.uniform(*azimuths), rng.uniform(*elevations))
    return Lighting(light, float(rng.uniform(*LIGHT_AMBIENT)), float(rng.uniform(*LIGHT_INTENSITY)))


def draw_material(rng: np.random.Generator) -> Material:
    """Half the time matte, else glossy with a seeded highlight (GLOSSY_SPECULAR, GLOSSY_SHININESS)."""
    if rng.random() < 0.5:
        return MATTE
    shininess = math.exp(rng.uniform(math.log(GLOSSY_SHININESS[0]), math.log(GLOSSY_SHININESS[1])))
    return Material(float(rng.uniform(*GLOSSY_SPECULAR)), shininess)


def frame_input_view(
    mesh: trimesh.Trimesh, elevation: float, fraction: float, *, fov_deg: float = DEFAULT_FOV_DEG,
    radius: float = DEFAULT_RADIUS, max_radius: float = MAX_FRAMED_RADIUS,
) -> tuple[trimesh.Trimesh, float]:  # fmt: skip
    """(a copy of the mesh, the scale applied): scaled about the origin and shifted across the view of the camera at
    (elevation, azimuth 0) so that, seen from that camera, the object's silhouette is centred and its larger side
    is `fraction` of the frame, as `svd3d orbit` frames a photo (svd3d.segment.prepare_object) before the model
    sees it. The silhouette's box is that of the projected vertices (perspective, so a few fixed-point rounds); the
    scale stops where the farthest vertex reaches `max_radius`, so the cameras stay well outside the object."""
    c2w = orbit_c2w([elevation], [0.0], radius)[0]
    rotation, centre = c2w[:3, :3], c2w[:3, 3]  # camera axes (columns) and position
    half = math.tan(math.radians(fov_deg) / 2)
    vertices = np.asarray(mesh.vertices, np.float64)
    scale, shift = 1.0, np.zeros(3)
    for _ in range(8):
        cam = (vertices * scale + shift - centre) @ rotation  # (V, 3) in camera axes, looking down -Z
        xy = cam[:, :2] / (-cam[:, 2:3] * half)  # (V, 2) in [-1, 1] across the frame
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        side = float(max(hi - lo))
        scale *= 2 * fraction / max(side, 1e-6)
        reach = float(np.linalg.norm(vertices * scale + shift, axis=1).max())
        scale *= min(1.0, max_radius / reach)
        shift -= ((lo + hi) / 2 * radius * half) @ rotation[:, :2].T  # move the box centre onto the view axis
    framed = mesh.copy()
    framed.apply_scale(scale)
    framed.apply_translation(shift)
    return framed, scale


def render_object_orbits(mesh: trimesh.Trimesh, rng: np.random.Generator, settings: RenderOrbitSettings) -> dict:
    """Render one normalised mesh (inside the sphere of radius 0.5, as `load_mesh(fit_to="sphere")` leaves it)
    along one seeded orbit per entry of settings.orbits.

    The object gets a seeded start azimuth by turning the mesh about +Y (a copy), so the stored azimuths are at
    the same time relative to frame 0 and absolute in the turned mesh's frame. Each orbit draws its own base
    elevation uniformly from settings.elevation_range; a dynamic one also its wobble and jitter seed
    (svd3d.cameras.DynamicOrbit). Light: by default the renderer's headlight, so every view - the input view above
    all - is lit the same way relative to the camera, as photos of objects usually are, and the model never has to
    infer a light direction; world-fixed lights would darken a random side of each object. settings.light
    "varied" moves that camera-fixed light (per orbit, `draw_lighting`), settings.material "varied" makes half the
    objects glossy (`draw_material`) and settings.framing "input" frames each orbit's input view as `svd3d orbit`
    frames a photo (`frame_input_view`). These draw after all the others, so the default look draws exactly
    what it always did.

    Returns {"frames": (O, T, H, W, 3) uint8, "masks": (O, T, H, W) uint8, "elevations", "azimuths": (O, T)
    float32, "start_azimuth": degrees, "looks": one dict per orbit (light, material, framing)}.
    """
    trimesh = signals.import_whole("trimesh")

    start = float(rng.uniform(0.0, 360.0))
    turned = mesh.copy()
    # rotating by -start about +Y brings the view from azimuth `start` to azimuth 0
    turned.apply_transform(trimesh.transformations.rotation_matrix(math.radians(-start), [0.0, 1.0, 0.0]))
    angles = []
    for kind in settings.orbits:
        elevation = float(rng.uniform(*settings.elevation_range))
        if kind == "static":
            angles.append(StaticOrbit(elevation, settings.frames).angles())
        else:
            angles.append(DynamicOrbit(elevation, settings.frames, seed=int(rng.integers(2**31))).angles())
    material = draw_material(rng) if settings.material == "varied" else MATTE
    o, t, s = len(settings.orbits), settings.frames, settings.size
    out = {
        "frames": np.empty((o, t, s, s, 3), np.uint8),
        "masks": np.empty((o, t, s, s), np.uint8),
        "elevations": np.stack([a[0] for a in angles]).astype(np.float32),
        "azimuths": np.stack([a[1] for a in angles]).astype(np.float32),
        "start_azimuth": start,
        "looks": [],
    }
    for k, (elevations, azimuths) in enumerate(angles):
        lighting = draw_lighting(rng) if settings.light == "varied" else Lighting()
        shown, scale = turned, 1.0
        if settings.framing == "input":
            fraction = float(rng.uniform(*settings.object_fraction))
            shown, scale = frame_input_view(turned, float(elevations[0]), fraction)
        result = render_views(shown, elevations, azimuths, s, light=lighting.light, ambient=lighting.ambient,
                              intensity=lighting.intensity, material=material, supersample=settings.supersample)  # fmt: skip
        out["frames"][k], out["masks"][k] = result.rgba[..., :3], result.rgba[..., 3]
        out["looks"].append({**lighting.record(), "specular": round(material.specular, 4),
                             "shininess": round(material.shininess, 2), "scale": round(scale, 4)})  # fmt: skip
    return out


def find_meshes(meshes: str | Path | list) -> list[Path]:
    """A folder (searched recursively for mesh files) or a list of mesh paths -> sorted, checked paths."""
    if isinstance(meshes, str | Path):
        folder = Path(meshes)
        if not folder.exists():
            raise SVD3DError(f"mesh folder {folder} does not exist")
        if folder.is_file():
            return [folder]
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
        if not paths:
            raise SVD3DError(f"no mesh files in {folder}: looked for {', '.join(MESH_SUFFIXES)} (searched subfolders)")
        return paths
    paths = [Path(p) for p in meshes]
    if not paths:
        raise SVD3DError("no mesh files given; pass a folder or a list of .glb / .obj / .ply / .stl files")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SVD3DError(f"mesh file {missing[0]} does not exist ({len(missing)} of {len(paths)} missing)")
    return paths


def _mesh_names(paths: list[Path], root: Path | None) -> list[str]:
    """Object names: the path relative to the folder without suffix (or the file stem), "#" made safe, unique."""
    names = []
    for p in paths:
        base = p.relative_to(root).with_suffix("").as_posix() if root is not None else p.stem
        names.append(base.replace("#", "_"))
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n}-{seen[n]}"
    return names


# A mesh dataset is built one mesh at a time into a hidden parts folder beside the dataset (".NAME.svd3d-parts/",
# one .npz per finished mesh, written atomically), then assembled in index order. So a rerun, another worker or
# another rank (torchrun / accelerate launch) never renders a finished mesh again, and every way of splitting the
# work gives the same bytes: mesh i always draws from object_rng(seed, i).
PART_KEYS = ("frames", "masks", "elevations", "azimuths")


def parts_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.svd3d-parts"


def part_key(path: Path, index: int, settings: RenderOrbitSettings, seed: int) -> str:
    """What a part was rendered from: the mesh file (path, size, modification time), its index, the settings and
    seed. A part with another key is stale and rendered again."""
    stat = path.stat()
    record = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, index, settings.record(), int(seed)]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def read_part(part: Path, key: str) -> dict | None:
    """A finished part as {"error": str, arrays...}, or None when it is missing, unreadable or stale."""
    try:
        with np.load(part, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return {"error": str(data["error"]), **{k: data[k] for k in PART_KEYS if k in data}}
    except (OSError, ValueError, KeyError):
        return None


def render_part(path: Path, index: int, part: Path, key: str, settings: RenderOrbitSettings, seed: int) -> None:
    """Render mesh `index` along its orbits into the file `part`; a mesh that cannot be loaded gives a part that
    records why (so it is listed as skipped, and not tried again)."""
    arrays, error = {}, ""
    try:
        rendered = render_object_orbits(load_mesh(path, fit_to="sphere"), object_rng(seed, index), settings)
        arrays = {k: rendered[k] for k in PART_KEYS}
    except SVD3DError as err:
        log.warning("skipping %s: %s", path, err)
        error = str(err)
    with atomic_file(part) as tmp, tmp.open("wb") as fh:
        np.savez(fh, key=np.str_(key), error=np.str_(error), **arrays)


def _worker_start(threads: int) -> None:
    """A pool worker's share of the cores, for torch and for ray casting."""
    import torch

    torch.set_num_threads(threads)
    set_ray_threads(threads)


def render_orbit_dataset(
    meshes: str | Path | list,
    out: str | Path | None,
    *,
    settings: RenderOrbitSettings | None = None,
    seed: int = 0,
    workers: int = 1,
    rank: Rank | None = None,
) -> OrbitData | None:
    """Render every mesh (a folder, searched recursively, or a list of GLB / glTF / OBJ / PLY / STL / OFF files)
    along seeded orbits (`settings`, default RenderOrbitSettings(): size, views, orbit kinds...) into an
    OrbitData, saved to `out` unless it is None.

    Each mesh is loaded with `load_mesh(fit_to="sphere")` (centred, inside every frame) and rendered by
    `render_object_orbits` (seeded start azimuth, elevations, dynamic orbit; headlight; white background): one
    sample per orbit kind, named "<path relative to the folder>#<orbit>". Object i draws from a generator seeded
    by (seed, i), i its index in sorted path order. Meshes that fail to load are skipped with a warning and listed
    in the manifest's source.skipped; it is an error when none loads.

    With `out`: resumable and shardable (see PART_KEYS above). `workers` processes share this process's cores;
    `rank` (svd3d.batch.Rank: torchrun / accelerate launch) takes every world_size-th mesh. The process that finds
    every part finished assembles the dataset and returns it; the others return None.
    """
    # 1. check inputs
    settings = (settings or RenderOrbitSettings()).check()
    workers = whole_number("workers", workers, 1, unit="processes")
    rank = rank or Rank()
    if out is not None:
        out = Path(out)
        check_dataset_output(out)
    paths = find_meshes(meshes)
    root = Path(meshes) if isinstance(meshes, str | Path) and Path(meshes).is_dir() else None
    names = _mesh_names(paths, root)
    log.info("rendering %d meshes: %s orbits of %d views at %d px", len(paths), "+".join(settings.orbits),
             settings.frames, settings.size)  # fmt: skip

    # 2. render this process's share that is not finished yet, each mesh into its part
    parts = parts_folder(out) if out is not None else Path(tempfile.mkdtemp(prefix="svd3d-parts-"))
    keys = [part_key(p, i, settings, seed) for i, p in enumerate(paths)]
    part = [parts / f"{i:06d}.npz" for i in range(len(paths))]
    todo = [i for i in shard(len(paths), rank.rank, rank.world_size) if read_part(part[i], keys[i]) is None]
    jobs = [(paths[i], i, part[i], keys[i], settings, seed) for i in todo]
    desc = f"rank {rank.rank} meshes" if rank.world_size > 1 else "meshes"
    try:
        if workers == 1 or len(jobs) < 2:
            for job in tqdm(jobs, desc=desc, disable=None):
                render_part(*job)
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            threads = max(1, (rank_threads(rank) or cores) // workers)
            context = multiprocessing.get_context("spawn")  # open3d and torch threads do not survive a fork
            with context.Pool(workers, initializer=_worker_start, initargs=(threads,)) as pool:
                pending = [pool.apply_async(render_part, job) for job in jobs]
                for result in tqdm(pending, desc=desc, disable=None):
                    result.get()

        # 3. assemble in index order, once every part is finished (by whichever process sees that first)
        finished = [read_part(p, k) for p, k in zip(part, keys, strict=True)]
        if any(f is None for f in finished):
            log.debug("rank %d: its %d meshes are rendered; the last rank to finish assembles %s", rank.rank,
                     len(todo), out)  # fmt: skip
            return None
        buffer, skipped = OrbitBuffer(len(paths), settings), []
        for path, name, done in zip(paths, names, finished, strict=True):
            if done["error"]:
                skipped.append({"path": str(path), "error": done["error"]})
            else:
                buffer.add(name, done)
        if not buffer.names:
            raise SVD3DError(f"none of the {len(paths)} mesh files could be loaded (first: {skipped[0]['error']})")
        source = {
            "generator": "svd3d.training.meshes.render_orbit_dataset",
            "settings": settings.record(),
            "seed": int(seed),
            "meshes": str(root) if root is not None else [str(p) for p in paths],
            "skipped": skipped,
        }
        data = buffer.data(source)
        if out is not None:
            with outputs.locked(out):
                if parts.is_dir():  # another rank may have assembled it while this one waited for the lock
                    data.save(out)
                    shutil.rmtree(parts)
        return data
    finally:
        if out is None:
            shutil.rmtree(parts, ignore_errors=True)
