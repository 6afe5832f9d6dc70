"""The training dataset format: orbits of objects (SV3D-style) and short clips (SVD-style), in memory and on disk,
and the settings every builder shares.

Two typed containers, one per model kind, hold every sample's frames and conditioning:

    OrbitData   frames (N, T, H, W, 3) uint8 on white, elevations / azimuths (N, T) float32 degrees, masks
    ClipData    frames (N, T, H, W, 3) uint8, fps (N,) float32, motion (N,) float32 (SVD motion bucket,
                `motion_bucket`)

Names: one per sample. The part before the first "#" names the *object* the sample comes from: the orbits of one
mesh ("chair#static", "chair#dynamic") or the windows of one video ("walk.mp4#0014") share it, and `split` keeps
each object whole, so no view of a held-out object is ever trained on.

On disk a dataset is a folder, written to a temporary name and renamed into place:

    manifest.json   kind ("orbit" | "clip"), count, frames, height, width, names, arrays (shape and dtype of each
                    .npy), source (how it was made: generator, settings, seed, skipped inputs), svd3d_version
    frames.npy      (N, T, H, W, 3) uint8; `load(folder)` memory-maps it, so big datasets stream from disk
    ...             one .npy per other array (orbit: elevations, azimuths, masks; clip: fps, motion)

The builders, each in its own module, make datasets of this format: orbits rendered from mesh files
(svd3d.training.meshes) or procedural objects (svd3d.training.procedural), both with `RenderOrbitSettings` into an
`OrbitBuffer`; synthetic clips (svd3d.training.clips) and windows of real videos (svd3d.training.videos). `svd3d data`
(svd3d.cli) runs them.

Motion bucket (SVD's motion conditioning, 0..255): SVD derives it from optical flow; svd3d uses a flow-free proxy
computed from the frames themselves, so synthetic and real clips get it the same way (`motion_bucket`):
d = the mean absolute difference between consecutive frames, over pixels and RGB channels, in 0..255 intensity
units, and bucket = min(255, round(MOTION_SCALE * log2(1 + d))): 0 for a still clip, 64 for d = 1, 128 for d = 3,
192 for d = 7, 255 from d = 15 on. The logarithm spreads slow and fast clips over the range (synthetic clips:
median about 110, 10th / 90th percentile about 45 / 195) where a linear scale crowds most clips near 0 or clips the
fast ones. It is measured at the dataset's resolution (64 px by default), so compare buckets at one resolution.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from svd3d import outputs
from svd3d.errors import SVD3DError
from svd3d.media import write_json
from svd3d.version import __version__

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the folder layout; bumped when a manifest key or an array changes meaning
MANIFEST = "manifest.json"
OrbitKind = Literal["static", "dynamic"]
DEFAULT_ORBITS: tuple[OrbitKind, ...] = ("static", "dynamic")
DEFAULT_ELEVATION_RANGE = (-5.0, 30.0)  # degrees; SV3D's training orbits span about this band
MAX_ELEVATION = 75.0  # |elevation| limit of an orbit's base elevation: a dynamic orbit wobbles up to 10 more
MOTION_SCALE = 64.0  # motion buckets per doubling of (1 + mean absolute frame difference); see motion_bucket


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
    motion: np.ndarray  # (N,) float32, SVD motion bucket 0..255 (motion_bucket)
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


def motion_bucket(frames: np.ndarray) -> float:
    """SVD motion bucket proxy of one clip: (T, H, W, 3) uint8 -> a whole number in 0..255 (module docstring)."""
    if frames.ndim != 4 or len(frames) < 2:
        raise SVD3DError(f"a motion bucket needs a clip of (T >= 2, H, W, 3) frames, got shape {frames.shape}")
    diff = float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean())
    return float(min(255.0, round(MOTION_SCALE * np.log2(1.0 + diff))))


# ------------------------------------------------------------------------------------------------ orbit datasets


LightChoice = Literal["headlight", "varied"]
MaterialChoice = Literal["matte", "varied"]
Framing = Literal["sphere", "input"]
LIGHT_CHOICES: tuple[str, ...] = get_args(LightChoice)
MATERIAL_CHOICES: tuple[str, ...] = get_args(MaterialChoice)
FRAMINGS: tuple[str, ...] = get_args(Framing)
DEFAULT_OBJECT_FRACTION = (0.85, 0.85)  # framing "input": svd3d orbit's own default (svd3d.defaults.OBJECT_FRACTION)
MIN_OBJECT_FRACTION = 0.3


def _pair(name: str, value, low: float, high: float, unit: str = "") -> tuple[float, float]:
    """`value` as a (low, high) pair of floats within [low, high], or an SVD3DError naming `name`."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SVD3DError(
            f"{name} must be two numbers (low, high){f' in {unit}' if unit else ''}, got {value!r}"
        ) from None
    if not (low <= lo <= hi <= high):
        raise SVD3DError(f"{name} must satisfy {low:g} <= low <= high <= {high:g}{f' {unit}' if unit else ''}, "
                         f"got ({lo:g}, {hi:g})")  # fmt: skip
    return lo, hi


@dataclass(frozen=True)
class OrbitLook:
    """How an orbit dataset shows each object, besides the views' size and count (a recipe's [data.render]; the
    defaults are the bundled tiny-orbit's data). Every choice is drawn per object or orbit from its own seeded
    generator (svd3d.training.meshes.render_object_orbits)."""

    orbits: tuple[OrbitKind, ...] = DEFAULT_ORBITS  # one sample per entry, per object
    elevation_range: tuple[float, float] = DEFAULT_ELEVATION_RANGE  # degrees, seeded uniform per orbit
    supersample: int = 3  # s x s rays in edge pixels (svd3d.render)
    light: LightChoice = "headlight"  # "varied": per orbit a camera-fixed light of seeded direction, intensity and
    # ambient (svd3d.training.meshes.TRAIN_LIGHT); never from where the held-out family's light comes
    material: MaterialChoice = "matte"  # "varied": half the objects glossy, seeded highlight strength and sharpness
    framing: Framing = "sphere"  # "sphere": the mesh as load_mesh(fit_to="sphere") leaves it; "input": per orbit,
    # scaled and shifted so its input view is framed as `svd3d orbit` frames a photo (object_fraction)
    object_fraction: tuple[float, float] = DEFAULT_OBJECT_FRACTION  # framing "input": seeded uniform per orbit

    def check(self):
        """Validated copy (tuples normalised), or an SVD3DError naming the bad value."""
        orbits = (self.orbits,) if isinstance(self.orbits, str) else tuple(self.orbits)
        if not orbits or any(o not in ("static", "dynamic") for o in orbits) or len(set(orbits)) != len(orbits):
            raise SVD3DError(f"orbits must be distinct entries of 'static' and 'dynamic', got {self.orbits!r}")
        supersample = whole_number("supersample", self.supersample, 1, 8)
        elevation_range = _pair("elevation_range", self.elevation_range, -MAX_ELEVATION, MAX_ELEVATION, "degrees")
        for name, value, choices in (("light", self.light, LIGHT_CHOICES), ("material", self.material,
                                     MATERIAL_CHOICES), ("framing", self.framing, FRAMINGS)):  # fmt: skip
            if value not in choices:
                raise SVD3DError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        fraction = _pair("object_fraction", self.object_fraction, MIN_OBJECT_FRACTION, 1.0)
        return replace(self, orbits=orbits, elevation_range=elevation_range, supersample=supersample,
                       object_fraction=fraction)  # fmt: skip

    def is_default(self) -> bool:
        """Whether objects are shown as the bundled tiny-orbit's data shows them (orbits and elevations aside)."""
        return (self.light, self.material, self.framing) == ("headlight", "matte", "sphere")


@dataclass(frozen=True)
class RenderOrbitSettings(OrbitLook):
    """How every object of an orbit dataset is rendered (recorded in the manifest): the views' size and count, and
    how the object is shown (OrbitLook)."""

    size: int = 64  # square pixels
    frames: int = 21  # views per orbit, frame 0 = the input view

    def check(self) -> RenderOrbitSettings:
        """Validated copy (tuples normalised), or an SVD3DError naming the bad value."""
        size = whole_number("size", self.size, 8, unit="pixels")
        frames = whole_number("frames", self.frames, 2, unit="views per orbit")
        return replace(OrbitLook.check(self), size=size, frames=frames)

    def record(self) -> dict:
        record = {
            "size": self.size,
            "frames": self.frames,
            "orbits": list(self.orbits),
            "elevation_range": list(self.elevation_range),
            "supersample": self.supersample,
            "light": "headlight",
            "fit_to": "sphere",
        }
        if not self.is_default():  # the look of tiny-orbit's data is recorded as it always was
            record |= {"light": self.light, "material": self.material, "framing": self.framing}
            if self.framing == "input":
                record |= {"fit_to": "input view", "object_fraction": list(self.object_fraction)}
        return record


class OrbitBuffer:
    """An OrbitData being built: preallocated arrays for up to `max_objects` objects, one sample per orbit kind of
    `settings`, that each rendered object is written into (no stacking copies of big datasets)."""

    def __init__(self, max_objects: int, settings: RenderOrbitSettings) -> None:
        o, t, s = len(settings.orbits), settings.frames, settings.size
        self.orbits = settings.orbits
        self.frames = np.empty((max_objects * o, t, s, s, 3), np.uint8)
        self.masks = np.empty((max_objects * o, t, s, s), np.uint8)
        self.elevations = np.empty((max_objects * o, t), np.float32)
        self.azimuths = np.empty((max_objects * o, t), np.float32)
        self.names: list[str] = []

    def add(self, name: str, rendered: dict) -> None:
        """Object `name`'s rendered orbits (svd3d.training.meshes.render_object_orbits), as samples "name#orbit"."""
        at = slice(len(self.names), len(self.names) + len(self.orbits))
        for key in ("frames", "masks", "elevations", "azimuths"):
            getattr(self, key)[at] = rendered[key]
        self.names += [f"{name}#{kind}" for kind in self.orbits]

    def data(self, source: dict) -> OrbitData:
        """The objects added so far as an OrbitData (views of the arrays, no copy), `source` its provenance."""
        n = len(self.names)
        return OrbitData(
            frames=self.frames[:n],
            elevations=self.elevations[:n],
            azimuths=self.azimuths[:n],
            names=self.names,
            masks=self.masks[:n],
            source=source,
        )
