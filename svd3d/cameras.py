"""The one camera convention of svd3d, as small pure functions.

World: right-handed, +Y up, metres; the object centred at the origin inside [-0.5, 0.5]^3 (glTF's frame).
An orbit camera at elevation e (degrees above the equator), azimuth a (degrees about +Y) and radius r sits at
r (cos e sin a, sin e, cos e cos a) and looks at the origin with up near +Y. Azimuth 0 is the input view, on +Z;
increasing azimuth turns the camera counter-clockwise seen from above, i.e. to its own right.
Camera-to-world matrices use OpenGL camera axes (+X right, +Y up, looking down -Z), as nerfstudio expects.
Intrinsics: square pinhole, 33.8 degree field of view, radius 2 (SV3D's training cameras). Pixel rays pass
through pixel centres, (u + 0.5, v + 0.5) in pixel coordinates (`pixel_grid`).

Frame order: svd3d numbers views 000 = the input view, then increasing azimuth. A model may order its frames
differently (SV3D: input view last); ``model_order`` maps between the two.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.media import write_json

DEFAULT_FOV_DEG = 33.8
DEFAULT_RADIUS = 2.0

# ------------------------------------------------------------------------------------------------ poses


def camera_centers(elevations, azimuths, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """(N,) degrees, (N,) degrees -> (N, 3) float64 camera centres."""
    e, a = np.radians(np.asarray(elevations, float)), np.radians(np.asarray(azimuths, float))
    return radius * np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], axis=-1)


def orbit_c2w(elevations, azimuths, radius=DEFAULT_RADIUS) -> np.ndarray:
    """Camera-to-world matrices (N, 4, 4) float64, OpenGL axes, looking at the origin.

    Camera +Z points away from the origin; camera +X is the direction of increasing azimuth,
    (cos a, 0, -sin a), which stays defined straight above or below the object; camera +Y = Z x X.
    """
    e, a = np.radians(np.asarray(elevations, float)), np.radians(np.asarray(azimuths, float))
    z = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], axis=-1)
    x = np.stack([np.cos(a), np.zeros_like(a), -np.sin(a)], axis=-1)
    y = np.cross(z, x)
    c2w = np.zeros((len(z), 4, 4))
    r = np.broadcast_to(np.asarray(radius, float), (len(z),))[:, None]  # one radius, or one per camera
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, r * z
    c2w[:, 3, 3] = 1.0
    return c2w


def angles_from_c2w(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of orbit_c2w for cameras looking at the origin: (elevations, azimuths in [0, 360), radii)."""
    centers = np.asarray(c2w)[:, :3, 3]
    radius = np.linalg.norm(centers, axis=-1)
    elev = np.degrees(np.arcsin(np.clip(centers[:, 1] / radius, -1, 1)))
    azim = np.degrees(np.arctan2(centers[:, 0], centers[:, 2])) % 360.0
    return elev, azim, radius


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (nerfstudio's fl_x, fl_y, cx, cy, w, h)."""

    width: int
    height: int
    fl_x: float
    fl_y: float
    cx: float
    cy: float

    @staticmethod
    def from_fov(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> Intrinsics:
        """Square pixels; fov_deg spans the shorter side (both sides for a square image)."""
        focal = 0.5 * min(width, height) / math.tan(math.radians(fov_deg) / 2)
        return Intrinsics(width, height, focal, focal, width / 2, height / 2)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fl_x, 0, self.cx], [0, self.fl_y, self.cy], [0, 0, 1.0]])


# ------------------------------------------------------------------------------------------------ orbits


def _check_elevations(values: np.ndarray, what: str) -> None:
    bad = values[(values <= -90) | (values >= 90) | ~np.isfinite(values)]
    if bad.size:
        raise SVD3DError(f"{what} must be between -90 and 90 degrees (exclusive), got {bad[0]:g}")


@dataclass(frozen=True)
class StaticOrbit:
    """One elevation, num_frames views evenly spaced in azimuth, starting at the input view."""

    elevation: float = 10.0
    num_frames: int = 21

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        """(elevations, azimuths) in degrees, svd3d order (000 = input view, increasing azimuth)."""
        if self.num_frames < 1:
            raise SVD3DError(f"an orbit needs at least 1 frame, got {self.num_frames}; set --frames")
        _check_elevations(np.array([self.elevation]), "elevation")
        az = np.arange(self.num_frames) * 360.0 / self.num_frames
        return np.full(self.num_frames, float(self.elevation)), az


@dataclass(frozen=True)
class DynamicOrbit:
    """Smooth elevation wobble around `elevation` (one seeded sine cycle, zero at the input view) and a monotone
    azimuth sweep with seeded jitter: views of the top and bottom that a static orbit never sees (SV3D §4)."""

    elevation: float = 10.0
    num_frames: int = 21
    amplitude: float = 10.0  # degrees, at most
    jitter: float = 0.25  # azimuth jitter as a fraction of the even spacing, < 0.5 keeps it monotone
    seed: int = 0

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        if self.num_frames < 1:
            raise SVD3DError(f"an orbit needs at least 1 frame, got {self.num_frames}; set --frames")
        if not 0 <= self.jitter < 0.5:
            raise SVD3DError(f"azimuth jitter must be in [0, 0.5), got {self.jitter}")
        rng = np.random.default_rng(self.seed)
        n = self.num_frames
        t = np.arange(n) / n
        amp = self.amplitude * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
        elev = self.elevation + amp * np.sin(2 * np.pi * t)
        spacing = 360.0 / n
        az = np.arange(n) * spacing + np.concatenate([[0.0], rng.uniform(-self.jitter, self.jitter, n - 1) * spacing])
        _check_elevations(elev, "dynamic orbit elevations (elevation +- amplitude)")
        return elev, az


@dataclass(frozen=True)
class CustomOrbit:
    """Explicit views. Exactly one view must be the input view (azimuth 0); the others are put in increasing
    azimuth order after it (the reference's `azimuths[:-1].sort()` sorts a copy and does nothing)."""

    elevations: tuple[float, ...] = field(default_factory=tuple)
    azimuths: tuple[float, ...] = field(default_factory=tuple)

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        elev, az = np.asarray(self.elevations, float), np.asarray(self.azimuths, float)
        if len(elev) != len(az):
            raise SVD3DError(
                f"--elevations has {len(elev)} values and --azimuths {len(az)}; give one elevation per azimuth"
            )
        if len(az) == 0:
            raise SVD3DError("a custom orbit needs at least one view (--elevations and --azimuths)")
        if not np.isfinite(az).all():
            raise SVD3DError("azimuths must be finite numbers")
        _check_elevations(elev, "elevations")
        az = az % 360.0
        inputs = np.flatnonzero(np.isclose(az, 0.0) | np.isclose(az, 360.0))
        if len(inputs) != 1:
            raise SVD3DError(
                f"a custom orbit must contain the input view (azimuth 0) exactly once, found it {len(inputs)} times"
            )
        az[inputs] = 0.0
        order = np.argsort(az, kind="stable")
        az = az[order]
        if np.any(np.diff(az) <= 1e-9):
            raise SVD3DError("custom orbit azimuths must all differ (two views share an azimuth)")
        return elev[order], az


Orbit = StaticOrbit | DynamicOrbit | CustomOrbit


def build_orbit(
    kind: str,
    num_frames: int,
    elevation: float,
    elevations=None,
    azimuths=None,
    seed: int = 0,
    amplitude: float = 10.0,
) -> tuple[str, Orbit]:
    """The CLI's orbit choices as a typed orbit: ('static' | 'dynamic' | 'custom', orbit). Lists make it custom."""
    if elevations is not None or azimuths is not None:
        if elevations is None or azimuths is None:
            raise SVD3DError("a custom orbit needs both --elevations and --azimuths (comma-separated degrees)")
        if kind == "dynamic":
            raise SVD3DError("--orbit dynamic and custom --elevations/--azimuths exclude each other; choose one")
        return "custom", CustomOrbit(tuple(elevations), tuple(azimuths))
    if kind == "static":
        return "static", StaticOrbit(elevation, num_frames)
    if kind == "dynamic":
        return "dynamic", DynamicOrbit(elevation, num_frames, amplitude=amplitude, seed=seed)
    raise SVD3DError(f"unknown orbit {kind!r}; use --orbit static or --orbit dynamic")


FrameOrder = Literal["input_first", "input_last"]


def model_order(num_frames: int, frame_order: FrameOrder) -> np.ndarray:
    """Permutation p with model_frame[k] = svd3d_frame[p[k]]. SV3D ('input_last'): frames 1..N-1, then 0."""
    if frame_order == "input_first":
        return np.arange(num_frames)
    if frame_order == "input_last":
        return np.concatenate([np.arange(1, num_frames), [0]])
    raise ValueError(f"unknown frame order {frame_order!r}")


# ------------------------------------------------------------------------------------------------ pixel rays
# Pixel (u, v), u right and v down, spans [u, u + 1) x [v, v + 1); the ray through its centre has the camera-space
# direction ((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1) in OpenGL camera axes. `pixel_grid` writes it; the
# ray builders only combine its coordinates with camera-to-world matrices:
# - `grid_rays` / `subpixel_rays`: float32 rays [origin, direction] with the direction left unnormalised (camera
#   z = -1), so a hit's t is its depth along the camera's -Z axis (the renderer and the texture bake);
# - `pixel_rays`: float32 origins and unit directions, computed in float64 (the radiance field, the hull's floor).


def pixel_grid(intr: Intrinsics, supersample: int = 1, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ray directions (x, y, -1) of s x s rays per pixel: x (W, s) and y (H, s), computed in float64
    and given as `dtype`. Pixel u's rays pass through u + (i + 0.5) / s (s = 1: its centre, u + 0.5)."""
    sub = (np.arange(supersample) + 0.5) / supersample
    u = np.arange(intr.width)[:, None] + sub[None, :]
    v = np.arange(intr.height)[:, None] + sub[None, :]
    return ((u - intr.cx) / intr.fl_x).astype(dtype), (-(v - intr.cy) / intr.fl_y).astype(dtype)


def grid_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(B, 4, 4) camera-to-world, a 1-sample float32 `pixel_grid` (or a crop of one) -> (B, H*W, 6) float32 rays
    [origin, direction = x X + y Y - Z], row-major; unnormalised so that t is the distance along camera -Z."""
    x, y = grid[0][:, 0], grid[1][:, 0]  # (W,), (H,)
    axes = c2w[:, :3, :3].astype(np.float32)  # columns: camera X, Y, Z in world space
    rays = np.empty((len(c2w), len(y), len(x), 6), dtype=np.float32)
    rays[..., :3] = c2w[:, None, None, :3, 3]
    np.multiply(x[None, None, :, None], axes[:, None, None, :, 0], out=rays[..., 3:])
    rays[..., 3:] += (y[None, :, None] * axes[:, None, :, 1] - axes[:, None, :, 2])[:, :, None, :]
    return rays.reshape(len(c2w), -1, 6)


def subpixel_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray], view: np.ndarray, pixel: np.ndarray):
    """The s x s rays of K chosen pixels: (B, 4, 4), an s-sample float32 `pixel_grid`, (K,) view and pixel
    (v * W + u) indices -> (K, s*s, 6) float32, directions unnormalised as in `grid_rays`."""
    x, y = grid  # (W, s), (H, s)
    width, s = x.shape
    axes = c2w[view, :3, :3].astype(np.float32)  # (K, 3, 3)
    xs, ys = x[pixel % width], y[pixel // width]  # (K, s)
    rays = np.empty((len(view), s, s, 6), dtype=np.float32)
    rays[..., :3] = c2w[view, None, None, :3, 3]
    rays[..., 3:] = (
        xs[:, None, :, None] * axes[:, None, None, :, 0]
        + (ys[:, :, None] * axes[:, None, :, 1] - axes[:, None, :, 2])[:, :, None, :]
    )
    return rays.reshape(len(view), s * s, 6)


def pixel_rays(c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) OpenGL camera-to-world -> origins (N*H*W, 3) and unit directions (N*H*W, 3) float32 of the rays
    through the pixel centres, view-major then row-major (directions rotated and normalised in float64)."""
    x, y = pixel_grid(intr, 1, np.float64)
    u, v = x[:, 0], y[:, 0]
    cam = np.stack([*np.meshgrid(u, v, indexing="xy"), -np.ones((intr.height, intr.width))], -1).reshape(-1, 3)
    dirs = np.einsum("nij,pj->npi", c2w[:, :3, :3], cam)  # (N, P, 3)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins = np.broadcast_to(c2w[:, None, :3, 3], dirs.shape)
    return origins.reshape(-1, 3).astype(np.float32), dirs.reshape(-1, 3).astype(np.float32)


# --------------------------------------------------------------------------------------- nerfstudio I/O


@dataclass(frozen=True)
class CameraFrame:
    file_path: str  # relative to transforms.json, e.g. "frames/000.png"
    c2w: np.ndarray  # (4, 4) OpenGL camera-to-world
    elevation: float | None = None
    azimuth: float | None = None
    extra: dict = field(default_factory=dict)  # more per-frame keys, e.g. nerfstudio's depth_file_path


def transforms_dict(frames: list[CameraFrame], intrinsics: Intrinsics, extra: dict | None = None) -> dict:
    out = {
        "camera_model": "OPENCV",
        "w": intrinsics.width,
        "h": intrinsics.height,
        "fl_x": intrinsics.fl_x,
        "fl_y": intrinsics.fl_y,
        "cx": intrinsics.cx,
        "cy": intrinsics.cy,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": [],
    }
    for f in frames:
        item = {"file_path": f.file_path, "transform_matrix": np.asarray(f.c2w, float).round(10).tolist()}
        if f.elevation is not None:
            item["elevation_deg"] = float(f.elevation)
            item["azimuth_deg"] = float(f.azimuth)
        item.update(f.extra)
        out["frames"].append(item)
    out["svd3d"] = {
        "convention": "world +Y up, object in [-0.5, 0.5]^3, OpenGL camera axes, azimuth 0 = input view on +Z",
        **(extra or {}),
    }
    return out


def write_transforms(path: Path, frames: list[CameraFrame], intrinsics: Intrinsics, extra: dict | None = None):
    write_json(Path(path), transforms_dict(frames, intrinsics, extra))


RIGID_TOLERANCE = 1e-3  # how far a camera-to-world rotation may be from orthonormal (written matrices: ~1e-10)


_MEANING = {"w": "the image width", "h": "the image height", "fl_x": "the focal length", "fl_y": "the focal length",
            "cx": "the principal point", "cy": "the principal point"}  # fmt: skip


def _number(data: dict, key: str, path: Path, default: float | None = None, positive: bool = True) -> float:
    """data[key] (`default` when absent) as a finite float, > 0 when `positive`; SVD3DError naming the key if not."""
    raw = data[key] if default is None else data.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise SVD3DError(f"{path}: {key} is {raw!r}; it must be {_MEANING[key]} in pixels, {need}")
    return value


def _c2w_problem(matrix) -> str | None:
    """What is wrong with a camera-to-world matrix (4x4, finite, rigid, last row [0, 0, 0, 1]), or None."""
    try:
        c2w = np.asarray(matrix, float)
    except (TypeError, ValueError):
        c2w = None
    if c2w is None or c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        return "is not a 4x4 matrix of finite numbers"
    if not c2w.any():
        return "is all zeros"
    if not np.allclose(c2w[3], [0, 0, 0, 1], atol=RIGID_TOLERANCE):
        return f"has last row {np.round(c2w[3], 6).tolist()}, not [0, 0, 0, 1]"
    rot = c2w[:3, :3]
    error = np.abs(rot.T @ rot - np.eye(3)).max()
    if error > RIGID_TOLERANCE:
        return f"has a rotation part that is not orthonormal (scale or shear: |R^T R - I| = {error:.3g})"
    if np.linalg.det(rot) < 0:
        return "has a rotation part with determinant -1 (a mirror)"
    return None


def read_transforms(path: Path) -> tuple[Intrinsics, list[CameraFrame]]:
    """Read a nerfstudio transforms.json (global intrinsics; per-frame intrinsics are not supported).

    Checks what every reader needs: w, h, fl_x, fl_y > 0, finite cx, cy, and rigid camera-to-world matrices
    (the errors name the frame, by index and file_path, and the field)."""
    path = Path(path)
    if not path.is_file():
        raise SVD3DError(f"{path} does not exist; a nerfstudio folder needs transforms.json")
    try:
        data = json.loads(path.read_text())
        w, h = _number(data, "w", path), _number(data, "h", path)
        if w != int(w) or h != int(h):
            raise SVD3DError(f"{path}: w x h is {data['w']!r}x{data['h']!r}; both must be whole numbers of pixels")
        w, h = int(w), int(h)
        fl_x = _number(data, "fl_x", path)
        fl_y = _number(data, "fl_y", path, default=fl_x)
        cx, cy = _number(data, "cx", path, w / 2, positive=False), _number(data, "cy", path, h / 2, positive=False)
        intr = Intrinsics(w, h, fl_x, fl_y, cx, cy)
        frames = []
        for i, item in enumerate(data["frames"]):
            file_path = item["file_path"]
            if not isinstance(file_path, str) or not file_path:
                raise SVD3DError(
                    f"{path}: frame {i} has file_path {file_path!r}; give the image path, e.g. images/000.png"
                )
            problem = _c2w_problem(item["transform_matrix"])
            if problem is not None:
                raise SVD3DError(
                    f"{path}: frame {i} ({file_path}) transform_matrix {problem}; "
                    "give a rigid camera-to-world matrix (rotation, translation, last row [0, 0, 0, 1])"
                )
            c2w = np.asarray(item["transform_matrix"], float)
            frames.append(CameraFrame(file_path, c2w, item.get("elevation_deg"), item.get("azimuth_deg")))
    except (KeyError, TypeError, ValueError, OverflowError, json.JSONDecodeError) as err:
        if isinstance(err, SVD3DError):
            raise
        raise SVD3DError(f"{path} is not a valid nerfstudio transforms.json ({type(err).__name__}: {err})") from None
    return intr, frames
