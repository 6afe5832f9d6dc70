"""Orbit datasets rendered from meshes: one mesh along seeded orbits (`render_object_orbits`, which procedural
objects use too) and a folder of mesh files (`render_orbit_dataset`), in the format of svd3d.training.data."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from svd3d.cameras import DynamicOrbit, StaticOrbit
from svd3d.errors import SVD3DError
from svd3d.geometry import MESH_SUFFIXES, load_mesh
from svd3d.render import render_views
from svd3d.training.data import OrbitBuffer, OrbitData, RenderOrbitSettings, check_dataset_output

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)


def object_rng(seed: int, index: int) -> np.random.Generator:
    """Object `index`'s own generator: its draws do not depend on which other objects were made or skipped."""
    return np.random.default_rng([int(seed), int(index)])


def render_object_orbits(mesh: trimesh.Trimesh, rng: np.random.Generator, settings: RenderOrbitSettings) -> dict:
    """Render one normalised mesh (inside the sphere of radius 0.5, as `load_mesh(fit_to="sphere")` leaves it)
    along one seeded orbit per entry of settings.orbits.

    The object gets a seeded start azimuth by turning the mesh about +Y (a copy), so the stored azimuths are at
    the same time relative to frame 0 and absolute in the turned mesh's frame. Each orbit draws its own base
    elevation uniformly from settings.elevation_range; a dynamic one also its wobble and jitter seed
    (svd3d.cameras.DynamicOrbit). Light: the renderer's headlight, so every view - the input view above all - is
    lit the same way relative to the camera, as photos of objects usually are, and the model never has to infer
    a light direction; world-fixed lights would darken a random side of each object.

    Returns {"frames": (O, T, H, W, 3) uint8, "masks": (O, T, H, W) uint8, "elevations", "azimuths": (O, T)
    float32, "start_azimuth": degrees}.
    """
    import trimesh

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
    elev = np.concatenate([a[0] for a in angles])
    azim = np.concatenate([a[1] for a in angles])
    result = render_views(turned, elev, azim, settings.size, light="headlight", supersample=settings.supersample)
    o, t, s = len(settings.orbits), settings.frames, settings.size
    return {
        "frames": result.rgba[..., :3].reshape(o, t, s, s, 3),
        "masks": result.rgba[..., 3].reshape(o, t, s, s),
        "elevations": elev.reshape(o, t).astype(np.float32),
        "azimuths": azim.reshape(o, t).astype(np.float32),
        "start_azimuth": start,
    }


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


def render_orbit_dataset(
    meshes: str | Path | list,
    out: str | Path | None,
    *,
    settings: RenderOrbitSettings | None = None,
    seed: int = 0,
) -> OrbitData:
    """Render every mesh (a folder, searched recursively, or a list of GLB / glTF / OBJ / PLY / STL / OFF files)
    along seeded orbits (`settings`, default RenderOrbitSettings(): size, views, orbit kinds...) into an
    OrbitData, saved to `out` unless it is None.

    Each mesh is loaded with `load_mesh(fit_to="sphere")` (centred, inside every frame) and rendered by
    `render_object_orbits` (seeded start azimuth, elevations, dynamic orbit; headlight; white background): one
    sample per orbit kind, named "<path relative to the folder>#<orbit>". Object i draws from a generator seeded
    by (seed, i), i its index in sorted path order. Meshes that fail to load are skipped with a warning and listed
    in the manifest's source.skipped; it is an error when none loads.
    """
    # 1. check inputs
    settings = (settings or RenderOrbitSettings()).check()
    if out is not None:
        check_dataset_output(Path(out))
    paths = find_meshes(meshes)
    root = Path(meshes) if isinstance(meshes, str | Path) and Path(meshes).is_dir() else None
    names = _mesh_names(paths, root)
    log.info("rendering %d meshes: %s orbits of %d views at %d px", len(paths), "+".join(settings.orbits),
             settings.frames, settings.size)  # fmt: skip
    # 2. load and render each mesh
    buffer, skipped = OrbitBuffer(len(paths), settings), []
    for i, (path, name) in enumerate(tqdm(list(zip(paths, names, strict=True)), desc="meshes", disable=None)):
        try:
            mesh = load_mesh(path, fit_to="sphere")
        except SVD3DError as err:
            log.warning("skipping %s: %s", path, err)
            skipped.append({"path": str(path), "error": str(err)})
            continue
        buffer.add(name, render_object_orbits(mesh, object_rng(seed, i), settings))
    if not buffer.names:
        raise SVD3DError(f"none of the {len(paths)} mesh files could be loaded (first: {skipped[0]['error']})")
    # 3. assemble and save
    source = {
        "generator": "svd3d.training.meshes.render_orbit_dataset",
        "settings": settings.record(),
        "seed": int(seed),
        "meshes": str(root) if root is not None else [str(p) for p in paths],
        "skipped": skipped,
    }
    data = buffer.data(source)
    if out is not None:
        data.save(out)
    return data
