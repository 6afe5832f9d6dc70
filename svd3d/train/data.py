"""Training datasets: orbits of objects (SV3D-style) and short clips (SVD-style), in memory and on disk.

Two typed containers, one per model kind, hold every sample's frames and conditioning:

    OrbitData   frames (N, T, H, W, 3) uint8 on white, elevations / azimuths (N, T) float32 degrees, masks
    ClipData    frames (N, T, H, W, 3) uint8, fps (N,) float32, motion (N,) float32 (SVD motion bucket)

Names: one per sample. The part before the first "#" names the *object* the sample comes from: the orbits of one
mesh ("chair#static", "chair#dynamic") or the windows of one video ("walk.mp4#0014") share it, and `split` keeps
each object whole, so no view of a held-out object is ever trained on.

On disk a dataset is a folder, written to a temporary name and renamed into place:

    manifest.json   kind ("orbit" | "clip"), count, frames, height, width, names, arrays (shape and dtype of each
                    .npy), source (how it was made: generator, settings, seed, skipped inputs), svd3d_version
    frames.npy      (N, T, H, W, 3) uint8; `load(folder)` memory-maps it, so big datasets stream from disk
    ...             one .npy per other array (orbit: elevations, azimuths, masks; clip: fps, motion)

Orbit datasets are rendered here from mesh files (`render_orbit_dataset`), or from procedural objects
(svd3d.train.procedural); clip datasets come from svd3d.train.clips. `build_dataset` is what the CLI calls.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from svd3d import outputs
from svd3d.errors import SVD3DError

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the folder layout; bumped when a manifest key or an array changes meaning
MANIFEST = "manifest.json"
OrbitKind = Literal["static", "dynamic"]
DatasetKind = Literal["procedural", "meshes", "clips", "videos"]
DEFAULT_ORBITS: tuple[OrbitKind, ...] = ("static", "dynamic")
DEFAULT_ELEVATION_RANGE = (-5.0, 30.0)  # degrees; SV3D's training orbits span about this band
MAX_ELEVATION = 75.0  # |elevation| limit of an orbit's base elevation: a dynamic orbit wobbles up to 10 more


def whole_number(name: str, value, low: int, high: int | None = None, unit: str = "") -> int:
    """`value` as an int in [low, high], or an SVD3DError naming `name`, the bound and the value."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low or (high and value > high):
        bound = f"from {low} to {high}" if high else f">= {low}"
        raise SVD3DError(f"{name} must be a whole number {bound}{f' ({unit})' if unit else ''}, got {value!r}")
    return int(value)


def object_name(name: str) -> str:
    """The object a sample belongs to: its name up to the first "#" ("chair#static" -> "chair")."""
    return name.split("#", 1)[0]


# ------------------------------------------------------------------------------------------------ containers

# Per-array layout: axis letters (N samples, T frames, H, W, 3 channels) and dtype. Shared by the checks of the
# constructors and of `load`, so memory and disk can never disagree about a shape.
_ORBIT_ARRAYS = {
    "frames": ("NTHW3", np.uint8),
    "elevations": ("NT", np.float32),
    "azimuths": ("NT", np.float32),
    "masks": ("NTHW", np.uint8),
}
_CLIP_ARRAYS = {"frames": ("NTHW3", np.uint8), "fps": ("N", np.float32), "motion": ("N", np.float32)}


def _expected_shape(axes: str, dims: dict[str, int]) -> tuple[int, ...]:
    return tuple(3 if a == "3" else dims[a] for a in axes)


def _dims_of(frames: np.ndarray, what: str) -> dict[str, int]:
    if not isinstance(frames, np.ndarray) or frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        got = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise SVD3DError(f"{what}.frames must be an (N, T, H, W, 3) uint8 array, got {got}")
    n, t, h, w, _ = frames.shape
    return {"N": n, "T": t, "H": h, "W": w}


def _check_arrays(data: _Dataset) -> None:
    """Coerce float arrays to float32 (no copy when they already are) and check every shape against frames."""
    what = type(data).__name__
    dims = _dims_of(data.frames, what)
    for name, (axes, dtype) in data._ARRAYS.items():
        value = getattr(data, name)
        if name == "frames" or value is None:
            continue
        if dtype == np.float32:
            value = np.asarray(value, dtype=np.float32)
            object.__setattr__(data, name, value)
        elif not isinstance(value, np.ndarray) or value.dtype != dtype:
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise SVD3DError(f"{what}.{name} must be a {np.dtype(dtype).name} array, got {got}")
        expected = _expected_shape(axes, dims)
        if value.shape != expected:
            raise SVD3DError(
                f"{what}.{name} has shape {value.shape} but frames {data.frames.shape} need {expected} ({axes})"
            )
    if not isinstance(data.names, list) or not all(isinstance(n, str) for n in data.names):
        raise SVD3DError(f"{what}.names must be a list of strings, one per sample")
    if len(data.names) != dims["N"]:
        raise SVD3DError(f"{what} has {dims['N']} samples but {len(data.names)} names; give one name per sample")


def _indices(indices, count: int) -> np.ndarray:
    """Sample indices (ints, or a bool mask of length count) -> (K,) int64, range-checked."""
    idx = np.asarray(indices)
    if idx.dtype == bool:
        if idx.shape != (count,):
            raise SVD3DError(f"a boolean subset mask needs one entry per sample ({count}), got shape {idx.shape}")
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise SVD3DError(f"subset indices must be a 1-D list of integers, got {idx.dtype} shape {idx.shape}")
    bad = idx[(idx < -count) | (idx >= count)]
    if bad.size:
        raise SVD3DError(f"subset index {int(bad[0])} is out of range for a dataset of {count} samples")
    return idx.astype(np.int64) % max(count, 1)


class _Dataset:
    """What OrbitData and ClipData share: per-sample arrays along axis 0, names, save / load, subset, split."""

    KIND: ClassVar[str]
    _ARRAYS: ClassVar[dict[str, tuple[str, Any]]]
    _OPTIONAL: ClassVar[tuple[str, ...]] = ()
    frames: np.ndarray
    names: list[str]
    source: dict

    def __post_init__(self) -> None:
        _check_arrays(self)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, T, H, W): samples, frames per sample, height, width."""
        return tuple(self.frames.shape[:4])

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays that are present, by field name."""
        return {k: getattr(self, k) for k in self._ARRAYS if getattr(self, k) is not None}

    def objects(self) -> list[str]:
        """The distinct objects (`object_name` of each sample), in order of first appearance."""
        return list(dict.fromkeys(object_name(n) for n in self.names))

    def subset(self, indices):
        """The samples at `indices` (ints or a bool mask), in that order. A contiguous ascending range stays a view
        (memory-mapped arrays keep streaming); other selections are copied into memory."""
        idx = _indices(indices, len(self))
        if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            take = slice(int(idx[0]), int(idx[0]) + len(idx))
        else:
            take = idx
        arrays = {k: v[take] for k, v in self.arrays().items()}
        return replace(self, **arrays, names=[self.names[i] for i in idx])

    def split(self, held_out: int, seed: int = 0):
        """(train, held_out): `held_out` whole objects (all their samples) drawn with `seed`, the rest to train.
        Both keep the original sample order."""
        objects = self.objects()
        if isinstance(held_out, bool) or not isinstance(held_out, int | np.integer) or not 0 <= held_out < len(objects):
            raise SVD3DError(
                f"held_out must be a number of objects from 0 to {max(len(objects) - 1, 0)} (the dataset has "
                f"{len(objects)} objects and training needs at least one), got {held_out!r}"
            )
        rng = np.random.default_rng(seed)
        chosen = {objects[i] for i in rng.choice(len(objects), size=int(held_out), replace=False)}
        held = np.array([object_name(n) in chosen for n in self.names], dtype=bool)
        return self.subset(~held), self.subset(held)

    def save(self, folder: str | Path) -> Path:
        """Write the dataset folder (staged, swapped into place when complete; an earlier svd3d output there is
        replaced, anything else refused: svd3d.outputs)."""
        from svd3d import __version__
        from svd3d.media import write_json

        folder = Path(folder)
        check_dataset_output(folder)
        n, t, h, w = self.shape
        arrays = self.arrays()
        manifest = {
            "kind": self.KIND,
            "format": FORMAT_VERSION,
            "count": n,
            "frames": t,
            "height": h,
            "width": w,
            "names": list(self.names),
            "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
            "source": self.source,
            "svd3d_version": __version__,
        }
        with outputs.replacing(folder, "data") as tmp:
            for name, value in arrays.items():
                np.save(tmp / f"{name}.npy", value, allow_pickle=False)
            write_json(tmp / MANIFEST, manifest)  # last: a folder with a manifest is complete
        log.info("wrote %s dataset %s: %d samples of %d frames at %dx%d", self.KIND, folder, n, t, w, h)
        return folder

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True):
        """Read a dataset folder, checking every array against the manifest. mmap=True memory-maps the arrays
        (read-only), so only the samples a batch touches are read from disk."""
        manifest, arrays = _read_folder(Path(folder), cls.KIND, cls._ARRAYS, cls._OPTIONAL, mmap)
        return cls(**arrays, names=manifest["names"], source=manifest.get("source") or {})


@dataclass(eq=False)
class OrbitData(_Dataset):
    """Orbit views of objects: frame 0 is the input view (azimuth 0), then increasing azimuth (svd3d convention:
    the camera turns to its own right)."""

    KIND: ClassVar[str] = "orbit"
    _ARRAYS: ClassVar[dict] = _ORBIT_ARRAYS
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("masks",)

    frames: np.ndarray  # (N, T, H, W, 3) uint8, RGB composited on white; frame 0 = the input view
    elevations: np.ndarray  # (N, T) float32 degrees (svd3d convention)
    azimuths: np.ndarray  # (N, T) float32 degrees: frame 0 at 0, increasing (camera turns to its own right)
    names: list[str]  # one per sample, "object#orbit"
    masks: np.ndarray | None = None  # (N, T, H, W) uint8 alpha coverage 0..255, or None
    source: dict = field(default_factory=dict)  # how it was made (manifest "source")


@dataclass(eq=False)
class ClipData(_Dataset):
    """Short video clips with SVD's micro-conditioning: frames per second and motion bucket."""

    KIND: ClassVar[str] = "clip"
    _ARRAYS: ClassVar[dict] = _CLIP_ARRAYS

    frames: np.ndarray  # (N, T, H, W, 3) uint8 RGB
    fps: np.ndarray  # (N,) float32, frames per second of the clip
    motion: np.ndarray  # (N,) float32, SVD motion bucket 0..255 (svd3d.train.clips.motion_bucket)
    names: list[str]  # one per sample, "clip#start frame" for windows of a longer video
    source: dict = field(default_factory=dict)  # how it was made (manifest "source")


def _read_folder(folder: Path, kind: str, spec: dict, optional: tuple[str, ...], mmap: bool):
    """manifest, {field: array} of a dataset folder, every array checked against the manifest's shapes."""
    if not folder.is_dir():
        raise SVD3DError(
            f"dataset folder {folder} does not exist; build one with `svd3d data KIND -o {folder}` "
            "(KIND: procedural, meshes, clips or videos)"
        )
    path = folder / MANIFEST
    if not path.is_file():
        raise SVD3DError(f"{folder} is not an svd3d dataset: {MANIFEST} is missing (an interrupted build?); rebuild it")
    try:
        manifest = json.loads(path.read_text())
        dims = {"N": int(manifest["count"]), "T": int(manifest["frames"])}
        dims |= {"H": int(manifest["height"]), "W": int(manifest["width"])}
        names, listed = manifest["names"], manifest["arrays"]
        found = manifest["kind"]
    except (KeyError, TypeError, ValueError) as err:
        raise SVD3DError(f"{path} is not a valid dataset manifest ({type(err).__name__}: {err}); rebuild it") from None
    if found != kind:
        other = {"orbit": "OrbitData", "clip": "ClipData"}.get(found, "?")
        raise SVD3DError(f"{folder} holds a {found!r} dataset, not {kind!r}; load it with {other}.load")
    if not isinstance(names, list) or len(names) != dims["N"]:
        raise SVD3DError(f"{path}: count is {dims['N']} but names has {len(names)} entries; rebuild the dataset")
    arrays = {}
    for name, (axes, dtype) in spec.items():
        file = folder / f"{name}.npy"
        if name not in listed and name in optional:
            continue
        if not file.is_file():
            raise SVD3DError(f"dataset {folder} is missing {file.name} (listed in its manifest); rebuild it")
        try:
            value = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SVD3DError(f"cannot read {file}: {err}; rebuild the dataset") from None
        expected = _expected_shape(axes, dims)
        if value.shape != expected or value.dtype != dtype:
            raise SVD3DError(
                f"{file} is {value.shape} {value.dtype} but its manifest says {expected} {np.dtype(dtype).name} "
                f"({axes} with count {dims['N']}, frames {dims['T']}, {dims['H']}x{dims['W']}); rebuild the dataset"
            )
        arrays[name] = value
    return manifest, arrays


def load_dataset(folder: str | Path, mmap: bool = True) -> OrbitData | ClipData:
    """Load a dataset folder as OrbitData or ClipData, whichever its manifest says."""
    folder = Path(folder)
    try:
        kind = json.loads((folder / MANIFEST).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None  # the class's load gives the precise error
    return ClipData.load(folder, mmap) if kind == "clip" else OrbitData.load(folder, mmap)


def check_dataset_output(out: Path) -> None:
    """An output folder may be new, empty, or an earlier svd3d output (which a new build replaces); anything
    else is never touched (svd3d.outputs)."""
    outputs.check_replaceable(Path(out))


# ------------------------------------------------------------------------------------------------ orbit rendering


@dataclass(frozen=True)
class OrbitSettings:
    """How every object of an orbit dataset is rendered (recorded in the manifest)."""

    size: int = 64  # square pixels
    frames: int = 21  # views per orbit, frame 0 = the input view
    orbits: tuple[OrbitKind, ...] = DEFAULT_ORBITS  # one sample per entry, per object
    elevation_range: tuple[float, float] = DEFAULT_ELEVATION_RANGE  # degrees, seeded uniform per orbit
    supersample: int = 3  # s x s rays in edge pixels (svd3d.render)

    def check(self) -> OrbitSettings:
        """Validated copy (tuples normalised), or an SVD3DError naming the bad value."""
        orbits = (self.orbits,) if isinstance(self.orbits, str) else tuple(self.orbits)
        if not orbits or any(o not in ("static", "dynamic") for o in orbits) or len(set(orbits)) != len(orbits):
            raise SVD3DError(f"orbits must be distinct entries of 'static' and 'dynamic', got {self.orbits!r}")
        size = whole_number("size", self.size, 8, unit="pixels")
        frames = whole_number("frames", self.frames, 2, unit="views per orbit")
        supersample = whole_number("supersample", self.supersample, 1, 8)
        try:
            lo, hi = (float(v) for v in self.elevation_range)
        except (TypeError, ValueError):
            raise SVD3DError(
                f"elevation_range must be two numbers (low, high) in degrees, got {self.elevation_range!r}"
            ) from None
        if not (-MAX_ELEVATION <= lo <= hi <= MAX_ELEVATION):
            raise SVD3DError(
                f"elevation_range must satisfy -{MAX_ELEVATION:g} <= low <= high <= {MAX_ELEVATION:g} degrees, "
                f"got ({lo:g}, {hi:g})"
            )
        return replace(self, size=size, frames=frames, orbits=orbits, elevation_range=(lo, hi), supersample=supersample)

    def record(self) -> dict:
        return {
            "size": self.size,
            "frames": self.frames,
            "orbits": list(self.orbits),
            "elevation_range": list(self.elevation_range),
            "supersample": self.supersample,
            "light": "headlight",
            "fit_to": "sphere",
        }


def object_rng(seed: int, index: int) -> np.random.Generator:
    """Object `index`'s own generator: its draws do not depend on which other objects were made or skipped."""
    return np.random.default_rng([int(seed), int(index)])


def render_object_orbits(mesh: trimesh.Trimesh, rng: np.random.Generator, settings: OrbitSettings) -> dict:
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

    from svd3d.cameras import DynamicOrbit, StaticOrbit
    from svd3d.render import render_views

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


class _OrbitBuffer:
    """Preallocated arrays that rendered objects are written into (no stacking copies of big datasets)."""

    def __init__(self, max_objects: int, settings: OrbitSettings) -> None:
        o, t, s = len(settings.orbits), settings.frames, settings.size
        self.orbits = settings.orbits
        self.frames = np.empty((max_objects * o, t, s, s, 3), np.uint8)
        self.masks = np.empty((max_objects * o, t, s, s), np.uint8)
        self.elevations = np.empty((max_objects * o, t), np.float32)
        self.azimuths = np.empty((max_objects * o, t), np.float32)
        self.names: list[str] = []

    def add(self, name: str, rendered: dict) -> None:
        at = slice(len(self.names), len(self.names) + len(self.orbits))
        for key in ("frames", "masks", "elevations", "azimuths"):
            getattr(self, key)[at] = rendered[key]
        self.names += [f"{name}#{kind}" for kind in self.orbits]

    def data(self, source: dict) -> OrbitData:
        n = len(self.names)
        return OrbitData(
            frames=self.frames[:n],
            elevations=self.elevations[:n],
            azimuths=self.azimuths[:n],
            names=self.names,
            masks=self.masks[:n],
            source=source,
        )


def find_meshes(meshes: str | Path | list) -> list[Path]:
    """A folder (searched recursively for mesh files) or a list of mesh paths -> sorted, checked paths."""
    from svd3d.geometry import MESH_SUFFIXES

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
    size: int = 64,
    frames: int = 21,
    orbits: tuple[OrbitKind, ...] = DEFAULT_ORBITS,
    elevation_range: tuple[float, float] = DEFAULT_ELEVATION_RANGE,
    seed: int = 0,
    supersample: int = 3,
) -> OrbitData:
    """Render every mesh (a folder, searched recursively, or a list of GLB / glTF / OBJ / PLY / STL / OFF files)
    along seeded orbits into an OrbitData, saved to `out` unless it is None.

    Each mesh is loaded with `load_mesh(fit_to="sphere")` (centred, inside every frame) and rendered by
    `render_object_orbits` (seeded start azimuth, elevations, dynamic orbit; headlight; white background): one
    sample per orbit kind, named "<path relative to the folder>#<orbit>". Object i draws from a generator seeded
    by (seed, i), i its index in sorted path order. Meshes that fail to load are skipped with a warning and listed
    in the manifest's source.skipped; it is an error when none loads.
    """
    from tqdm import tqdm

    from svd3d.geometry import load_mesh

    # 1. check inputs
    settings = OrbitSettings(size, frames, orbits, elevation_range, supersample).check()
    if out is not None:
        check_dataset_output(Path(out))
    paths = find_meshes(meshes)
    root = Path(meshes) if isinstance(meshes, str | Path) and Path(meshes).is_dir() else None
    names = _mesh_names(paths, root)
    log.info("rendering %d meshes: %s orbits of %d views at %d px", len(paths), "+".join(settings.orbits), frames, size)
    # 2. load and render each mesh
    buffer, skipped = _OrbitBuffer(len(paths), settings), []
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
        "generator": "svd3d.train.data.render_orbit_dataset",
        "settings": settings.record(),
        "seed": int(seed),
        "meshes": str(root) if root is not None else [str(p) for p in paths],
        "skipped": skipped,
    }
    data = buffer.data(source)
    if out is not None:
        data.save(out)
    return data


# ------------------------------------------------------------------------------------------------ CLI helper


def _builders() -> dict:
    from svd3d.train.clips import load_video_folder, synthetic_clips
    from svd3d.train.procedural import procedural_orbit_dataset

    return {
        "procedural": procedural_orbit_dataset,
        "meshes": render_orbit_dataset,
        "clips": synthetic_clips,
        "videos": load_video_folder,
    }


@outputs.holds_output(lambda args: args["out"])
def build_dataset(kind: DatasetKind, out: str | Path, **options) -> Path:
    """Build a dataset of `kind` into the folder `out`; returns out. The CLI's `svd3d data`.

        procedural   procedural_orbit_dataset(count, size, frames, orbits, elevation_range, seed, supersample)
        meshes       render_orbit_dataset(source=<folder or files>, size, frames, orbits, ...)
        clips        synthetic_clips(count, size, frames, seed)
        videos       load_video_folder(source=<folder>, size, frames, stride)

    `out` may be new, empty or an earlier dataset (replaced); anything else is refused before any work.
    """
    builders = _builders()
    if kind not in builders:
        raise SVD3DError(f"unknown dataset kind {kind!r}; choose one of {', '.join(builders)}")
    out = Path(out)
    check_dataset_output(out)
    build = builders[kind]
    params = inspect.signature(build).parameters
    positional = [p for p in params if p not in ("out",) and params[p].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
    options = dict(options)
    if kind in ("meshes", "videos"):  # their first argument is where the inputs are
        if "source" not in options:
            raise SVD3DError(f"a {kind!r} dataset needs source= (the folder of {kind})")
        options[positional[0]] = options.pop("source")
    allowed = [p for p in params if p != "out"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SVD3DError(f"unknown option {unknown[0]!r} for a {kind!r} dataset; it takes {', '.join(allowed)}")
    missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in options]
    if missing:
        raise SVD3DError(f"a {kind!r} dataset needs {missing[0]}=")
    if "out" in params:
        build(out=out, **options)
    else:
        build(**options).save(out)
    return out
