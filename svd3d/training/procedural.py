"""Procedural objects for orbit training: seeded little assemblies of 1-4 coloured primitives.

A tiny orbit model learns what it can see, so the objects are built to be easy to read at 64 px and hard to fake:

- parts: boxes, (squashed) spheres, cylinders, cones, capsules and tori, with sizes kept within a 1:3 aspect ratio
  so no view of them degenerates to a sliver;
- assembly: each part after the first is attached to an earlier one, along a random direction (half the time
  upwards: stacking), overlapping it by a fraction of both parts' depth along the line between their centres, so
  the object is one connected-looking thing;
- asymmetry: parts sit off-centre and turn freely, colour patterns are laid out in each part's own frame before
  it turns, at least one part is patterned (a lone part with stripes or checker), and two-tone cuts and stripes
  lean at least MIN_TILT_DEG from the horizontal (never rings about the vertical), so turning the object is always
  visible;
- colour: per-part flat colour, two-tone (split by a random plane), stripes or (3-D) checker, from a palette of
  strong, distinct colours (no two parts share one), as face colours (svd3d.render shades them like any face
  coloured mesh). Faces are first cut along the pattern's planes, so pattern edges are exact straight cuts, crisp
  at any size, without subdividing the whole mesh.

`random_object(rng)` returns the mesh normalised as `load_mesh(fit_to="sphere")` would (bounding box centred at the
origin, farthest vertex at 0.5), so it stays inside every frame of an orbit at the default camera.

Variety (`ProceduralSettings`; the defaults make exactly the objects above, those of the bundled tiny-orbit): more
primitive kinds (wedges, pyramids, frustums, domes, tubes, and thin parts: plates and rods), deformations (twist,
taper, bend, applied after the pattern so the pattern deforms with the part), dotted and graded patterns, random
strong colours, up to 6 parts.

Held out (`held_out_object`, the held-out family of `svd3d eval orbit --family held-out`): kinds no training
object ever has, by construction - star prisms and trefoil knots (HELD_OUT_PRIMITIVES), which `ProceduralSettings`
refuses, and pastel colours (`is_held_out_colour`: pale, low saturation), which neither the palette nor the random
colours reach. The held-out light is svd3d.training.meshes.HELD_OUT_LIGHT_AZIMUTH.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from tqdm import tqdm

from svd3d import signals
from svd3d.errors import SVD3DError
from svd3d.training.data import OrbitBuffer, OrbitData, RenderOrbitSettings, check_dataset_output, whole_number
from svd3d.training.meshes import object_rng, render_object_orbits

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)

# strong, mutually distinct sRGB colours (none near the white background)
PALETTE = np.array(
    [
        (220, 30, 35),  # red
        (245, 130, 20),  # orange
        (240, 205, 20),  # yellow
        (110, 195, 30),  # lime
        (15, 135, 60),  # green
        (0, 165, 170),  # teal
        (40, 150, 235),  # sky blue
        (30, 55, 200),  # blue
        (120, 45, 185),  # purple
        (215, 45, 160),  # magenta
        (125, 70, 30),  # brown
        (35, 35, 45),  # near black
    ],
    dtype=np.int16,
)
PRIMITIVES = ("box", "sphere", "cylinder", "cone", "capsule", "torus")  # tiny-orbit's (the default)
MORE_PRIMITIVES = ("wedge", "pyramid", "frustum", "dome", "tube", "plate", "rod")  # plate and rod: thin parts
TRAIN_PRIMITIVES = PRIMITIVES + MORE_PRIMITIVES  # what ProceduralSettings may choose
HELD_OUT_PRIMITIVES = ("star", "trefoil")  # only in the held-out family, never in training
PATTERNS = ("flat", "two_tone", "stripes", "checker")  # tiny-orbit's (the default)
TRAIN_PATTERNS = PATTERNS + ("dots", "gradient")
COVERING = ("stripes", "checker", "dots")  # patterns that show on every side: a lone part always has one
DEFORMATIONS = ("twist", "taper", "bend")
PART_COUNTS = (1, 2, 3, 4)
PART_COUNT_P = (0.1, 0.3, 0.35, 0.25)  # how often an object has 1, 2, 3 or 4 parts
MORE_PARTS_P = 0.2  # max_parts above 4: the weight of 5 and of 6 parts beside PART_COUNT_P's
MAX_PARTS = 6  # the palette has colours for 6 two-coloured parts
PATTERN_P = (0.35, 0.25, 0.25, 0.15)
MORE_PATTERN_P = 0.15  # the weight of "dots" and of "gradient" beside PATTERN_P's
ColourScheme = Literal["palette", "random", "mixed"]
# colours in HSV (saturation, value in [0, 1]): random training colours are strong; the held-out family's pastels
# are pale and weak, and `is_held_out_colour` draws the line between them that no training colour crosses
TRAIN_SATURATION, TRAIN_VALUE = (0.45, 1.0), (0.3, 0.95)
PASTEL_SATURATION, PASTEL_VALUE = (0.12, 0.32), (0.85, 0.97)
HELD_OUT_MAX_SATURATION, HELD_OUT_MIN_VALUE = 0.38, 0.8

SMOOTH_EDGE = 0.025  # longest edge of the faces a dotted or graded part is drawn on
DEFORM_EDGE = 0.04  # longest edge of the faces of a deformed part
MIN_TILT_DEG = 40.0  # two-tone cuts and stripes lean at least this far from horizontal
OVERLAP = 0.3  # how far an attached part sinks into its parent, as a fraction of the shallower of the two


@dataclass(frozen=True)
class ProceduralSettings:
    """What procedural objects are made of (a recipe's [data.procedural]; the defaults make the bundled
    tiny-orbit's objects, draw for draw)."""

    primitives: tuple[str, ...] = PRIMITIVES  # drawn uniformly per part, from TRAIN_PRIMITIVES
    patterns: tuple[str, ...] = PATTERNS  # per part, from TRAIN_PATTERNS (PATTERN_P, MORE_PATTERN_P weights)
    colours: ColourScheme = "palette"  # "palette": PALETTE; "random": strong HSV colours; "mixed": either per object
    max_parts: int = 4  # 1 to 6 parts per object
    deform: float = 0.0  # chance that a part is twisted, tapered or bent (DEFORMATIONS)

    @classmethod
    def varied(cls) -> ProceduralSettings:
        """Every training kind: all primitives and patterns, mixed colours, up to 6 parts, a third deformed."""
        return cls(primitives=TRAIN_PRIMITIVES, patterns=TRAIN_PATTERNS, colours="mixed", max_parts=6, deform=0.3)

    def check(self) -> ProceduralSettings:
        """Validated copy (tuples), or an SVD3DError naming the bad value; held-out kinds are refused."""
        primitives = (self.primitives,) if isinstance(self.primitives, str) else tuple(self.primitives)
        patterns = (self.patterns,) if isinstance(self.patterns, str) else tuple(self.patterns)
        for what, chosen, allowed in (("primitive", primitives, TRAIN_PRIMITIVES), ("pattern", patterns,
                                                                                    TRAIN_PATTERNS)):  # fmt: skip
            held = [c for c in chosen if c in HELD_OUT_PRIMITIVES]
            if held:
                raise SVD3DError(f"primitive {held[0]!r} is held out of training: only the held-out family of "
                                 "`svd3d eval orbit --family held-out` has it, so that family stays unseen")  # fmt: skip
            unknown = [c for c in chosen if c not in allowed]
            if unknown or not chosen or len(set(chosen)) != len(chosen):
                bad = f"unknown {what} {unknown[0]!r}" if unknown else f"{what}s must be distinct and not empty"
                raise SVD3DError(f"{bad}, got {list(chosen)}; choose from {', '.join(allowed)}")
        if not any(p in COVERING for p in patterns):
            raise SVD3DError(f"patterns {list(patterns)} need one of {', '.join(COVERING)}: a lone part turning "
                             "shows only through a pattern that covers every side")  # fmt: skip
        if self.colours not in get_args(ColourScheme):
            raise SVD3DError(f"colours must be one of {', '.join(get_args(ColourScheme))}, got {self.colours!r}")
        max_parts = whole_number("max_parts", self.max_parts, 1, MAX_PARTS, unit="parts per object")
        if isinstance(self.deform, bool) or not isinstance(self.deform, int | float) or not 0 <= self.deform <= 1:
            raise SVD3DError(f"deform must be a chance from 0 to 1, got {self.deform!r}")
        return replace(self, primitives=primitives, patterns=patterns, max_parts=max_parts, deform=float(self.deform))

    def record(self) -> dict:
        return {"primitives": list(self.primitives), "patterns": list(self.patterns), "colours": self.colours,
                "max_parts": self.max_parts, "deform": self.deform}  # fmt: skip


def _primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One primitive centred at the origin, about 0.3-0.7 units across, no side under a third of the longest."""
    trimesh = signals.import_whole("trimesh")

    if kind == "box":
        extents = rng.uniform(0.25, 0.65, 3)
        return trimesh.creation.box(extents=np.maximum(extents, extents.max() / 3))
    if kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        mesh.apply_scale(rng.uniform(0.15, 0.32) * rng.uniform(0.7, 1.0, 3))  # a squashed ellipsoid
        return mesh
    if kind == "cylinder":
        radius, height = rng.uniform(0.1, 0.25), rng.uniform(0.25, 0.65)
        return trimesh.creation.cylinder(radius=radius, height=max(height, 2 * radius / 3), sections=32)
    if kind == "cone":
        radius, height = rng.uniform(0.14, 0.3), rng.uniform(0.3, 0.6)
        mesh = trimesh.creation.cone(radius=radius, height=max(height, 2 * radius / 3), sections=32)
        mesh.apply_translation((0.0, 0.0, -mesh.bounds.mean(axis=0)[2]))
        return mesh
    if kind == "capsule":
        radius = rng.uniform(0.1, 0.18)
        return trimesh.creation.capsule(height=rng.uniform(0.15, 0.45), radius=radius, count=[24, 24])
    if kind == "torus":
        major = rng.uniform(0.15, 0.26)
        return trimesh.creation.torus(major, major * rng.uniform(0.35, 0.5), major_sections=40, minor_sections=20)
    return _more_primitive(kind, rng)


def _more_primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """The primitives beyond tiny-orbit's (MORE_PRIMITIVES, then the held-out ones), centred at the origin, about
    0.3-0.7 units across, their axis (if any) along +Z; plates and rods are thin on purpose."""
    trimesh = signals.import_whole("trimesh")

    if kind == "wedge":  # a triangular prism
        half = rng.uniform(0.15, 0.3)
        outline = np.array([[-half, -half * 0.8], [half, -half * 0.8], [rng.uniform(-half, half), half * 0.9]])
        return _prism(outline, rng.uniform(0.25, 0.6))
    if kind == "pyramid":  # a square pyramid
        mesh = trimesh.creation.cone(radius=rng.uniform(0.2, 0.32), height=rng.uniform(0.3, 0.6), sections=4)
        mesh.apply_translation((0.0, 0.0, -mesh.bounds.mean(axis=0)[2]))
        return mesh
    if kind == "frustum":  # a cone with its tip cut off
        radius, height = rng.uniform(0.14, 0.3), rng.uniform(0.25, 0.55)
        mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=32)
        top = mesh.vertices[:, 2] > 0
        mesh.vertices[top, :2] *= rng.uniform(0.3, 0.7)
        return mesh
    if kind == "dome":  # a half sphere (flattened below its equator), squashed
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        mesh.vertices[:, 2] = np.maximum(mesh.vertices[:, 2], 0.0)
        mesh.apply_scale(rng.uniform(0.2, 0.32) * rng.uniform(0.7, 1.0, 3))
        mesh.apply_translation((0.0, 0.0, -mesh.bounds.mean(axis=0)[2]))
        return mesh
    if kind == "tube":  # a hollow cylinder
        outer = rng.uniform(0.14, 0.26)
        return trimesh.creation.annulus(outer * rng.uniform(0.5, 0.75), outer, rng.uniform(0.2, 0.55), sections=32)
    if kind == "plate":  # a thin slab: one side 5-12 times thinner than the others
        extents = rng.uniform(0.3, 0.65, 2)
        return trimesh.creation.box(extents=(*extents, extents.max() / rng.uniform(5, 12)))
    if kind == "rod":  # a thin bar: 8-16 times longer than wide
        height = rng.uniform(0.4, 0.7)
        return trimesh.creation.cylinder(radius=height / rng.uniform(16, 32), height=height, sections=16)
    if kind == "star":  # held out: a five-pointed star prism
        outer = rng.uniform(0.2, 0.32)
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, outer, outer * rng.uniform(0.38, 0.55))
        return _prism(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), rng.uniform(0.1, 0.25))
    if kind == "trefoil":  # held out: a trefoil knot of round tube
        return _trefoil(rng.uniform(0.05, 0.075), rng.uniform(0.85, 1.15))
    raise ValueError(f"unknown primitive {kind!r}")


def _prism(outline: np.ndarray, height: float) -> trimesh.Trimesh:
    """(n, 2) counter-clockwise outline, star-shaped about its centroid -> the closed prism of that outline along Z,
    centred: caps fanned from the centroid, one quad per side."""
    trimesh = signals.import_whole("trimesh")

    n, centre = len(outline), outline.mean(axis=0)
    ring = np.arange(n)
    nxt = (ring + 1) % n
    top = np.c_[outline, np.full(n, height / 2)]
    bottom = np.c_[outline, np.full(n, -height / 2)]
    vertices = np.concatenate([top, bottom, [[*centre, height / 2], [*centre, -height / 2]]])
    ct, cb = 2 * n, 2 * n + 1
    faces = np.concatenate([
        np.c_[np.full(n, ct), ring, nxt],  # top, facing +Z
        np.c_[np.full(n, cb), n + nxt, n + ring],  # bottom, facing -Z
        np.c_[ring, n + ring, n + nxt],  # sides
        np.c_[ring, n + nxt, nxt],
    ])  # fmt: skip
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.apply_translation((-centre[0], -centre[1], 0.0))
    return mesh


def _trefoil(tube: float, squash: float, samples: int = 120, sides: int = 12) -> trimesh.Trimesh:
    """A trefoil knot (x = sin t + 2 sin 2t, y = cos t - 2 cos 2t, z = -sin 3t, scaled to about 0.55 across) as a
    closed tube of radius `tube`; its frame N = T x Z never degenerates (the knot's xy speed is at least 3)."""
    trimesh = signals.import_whole("trimesh")

    t = np.linspace(0.0, 2 * np.pi, samples, endpoint=False)
    scale = 0.55 / 6.0
    curve = np.stack([np.sin(t) + 2 * np.sin(2 * t), np.cos(t) - 2 * np.cos(2 * t), -squash * np.sin(3 * t)], 1)
    tangent = np.stack([np.cos(t) + 4 * np.cos(2 * t), -np.sin(t) + 4 * np.sin(2 * t), -3 * squash * np.cos(3 * t)], 1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.cross(tangent, [0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    phi = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = np.cos(phi)[None, :, None] * normal[:, None] + np.sin(phi)[None, :, None] * binormal[:, None]
    vertices = (curve[:, None] * scale + tube * ring).reshape(-1, 3)  # (samples * sides, 3)
    i, j = np.meshgrid(np.arange(samples), np.arange(sides), indexing="ij")
    a, b = i * sides + j, ((i + 1) % samples) * sides + j
    c, d = ((i + 1) % samples) * sides + (j + 1) % sides, i * sides + (j + 1) % sides
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def _cut(vertices: np.ndarray, faces: np.ndarray, normal: np.ndarray, offsets) -> tuple[np.ndarray, np.ndarray]:
    """Split every face crossing a plane {x : x . normal = o}, o in offsets, so that face edges follow the
    pattern's edges exactly and per-face colours draw them crisp, however coarse the mesh."""
    from trimesh.intersections import slice_faces_plane

    for offset in offsets:
        origin = normal * offset
        v1, f1, _ = slice_faces_plane(vertices, faces, normal, origin)
        v2, f2, _ = slice_faces_plane(vertices, faces, -normal, origin)
        vertices, faces = np.concatenate([v1, v2]), np.concatenate([f1, f2 + len(v1)])
    return vertices, faces


def _pattern_axes(up: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rows: a random orthonormal frame whose first axis is at least MIN_TILT_DEG from `up` (the world's
    +Y seen from the part), so two-tone and stripes are never rings about the vertical that an orbit cannot see
    turn."""
    while True:
        axes = np.linalg.qr(rng.normal(size=(3, 3)))[0].T
        if abs(axes[0] @ up) <= np.cos(np.radians(MIN_TILT_DEG)):
            return axes


def _pattern(
    part: trimesh.Trimesh, pattern: str, colours: np.ndarray, up: np.ndarray, rng: np.random.Generator
) -> trimesh.Trimesh:
    """The part, its faces cut along the pattern's edges and coloured (RGBA face colours) in its own frame;
    `up` is the world's +Y in that frame."""
    trimesh = signals.import_whole("trimesh")

    vertices, faces = np.asarray(part.vertices), np.asarray(part.faces)
    axes = _pattern_axes(up, rng)
    if pattern == "two_tone":
        cell, used = 1e9, axes[:1]  # one cut through (near) the centre
        phase = rng.uniform(-0.05, 0.05)
    elif pattern == "stripes":
        cell, used = rng.uniform(0.07, 0.12), axes[:1]
        phase = rng.uniform(0, cell)
    elif pattern == "checker":
        cell, used = rng.uniform(0.09, 0.14), axes
        phase = rng.uniform(0, cell)
    elif pattern in ("dots", "gradient"):
        return _smooth_pattern(part, pattern, colours, axes, rng)
    else:
        cell, used, phase = None, axes[:0], 0.0
    for axis in used:
        along = vertices @ axis
        if pattern == "two_tone":
            offsets = [phase]
        else:
            first, last = np.floor((along.min() - phase) / cell), np.ceil((along.max() - phase) / cell)
            offsets = phase + cell * np.arange(first, last + 1)
        vertices, faces = _cut(vertices, faces, axis, offsets)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if cell is None:
        pick = np.zeros(len(faces), dtype=int)
    else:
        cells = np.floor((mesh.triangles_center @ used.T - phase) / cell).astype(int)  # (F, axes)
        pick = cells.sum(axis=1) % 2
    rgb = colours[pick]
    mesh.visual.face_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255)], axis=1).astype(np.uint8)
    return mesh


def _face_coloured(vertices: np.ndarray, faces: np.ndarray, rgb: np.ndarray) -> trimesh.Trimesh:
    """A mesh with (F, 3) sRGB face colours, opaque."""
    trimesh = signals.import_whole("trimesh")

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.visual.face_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255)], axis=1).astype(np.uint8)
    return mesh


def _smooth_pattern(
    part: trimesh.Trimesh, pattern: str, colours: np.ndarray, axes: np.ndarray, rng: np.random.Generator
) -> trimesh.Trimesh:
    """Patterns drawn per face of the part subdivided to small faces (about 1.5 px at 64 px): "dots", a 3-D lattice
    of balls of the second colour in the first, and "gradient", the first colour blending into the second along a
    tilted axis."""
    from trimesh.remesh import subdivide_to_size

    vertices, faces = subdivide_to_size(part.vertices, part.faces, max_edge=SMOOTH_EDGE)
    centres = vertices[faces].mean(axis=1) @ axes.T  # (F, 3) in the pattern's frame
    if pattern == "dots":
        cell = rng.uniform(0.1, 0.16)
        offset = centres - rng.uniform(0, cell, 3)
        gap = np.linalg.norm(offset - cell * np.round(offset / cell), axis=1)  # to the nearest lattice point
        rgb = colours[(gap < cell * rng.uniform(0.25, 0.35)).astype(int)]
    else:
        along = centres[:, 0]
        t = (along - along.min()) / max(float(np.ptp(along)), 1e-9)
        rgb = np.round(colours[0] + t[:, None] * (colours[1] - colours[0]).astype(float))
    return _face_coloured(vertices, faces, rgb)


def _deform(part: trimesh.Trimesh, kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """The coloured part subdivided (each face keeps its colour) and twisted, tapered or bent along its longest
    side, in its own frame, so its pattern deforms with it."""
    from trimesh.remesh import subdivide_to_size

    vertices, faces, index = subdivide_to_size(part.vertices, part.faces, max_edge=DEFORM_EDGE, return_index=True)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    axis = int(np.argmax(hi - lo))
    u, w = (a for a in range(3) if a != axis)
    p = vertices - (lo + hi) / 2
    length = float(hi[axis] - lo[axis])
    t = p[:, axis] / length  # -0.5 .. 0.5 along the part
    if kind == "twist":
        angle = np.radians(rng.uniform(60, 150)) * t
        cos, sin = np.cos(angle), np.sin(angle)
        p[:, u], p[:, w] = cos * p[:, u] - sin * p[:, w], sin * p[:, u] + cos * p[:, w]
    elif kind == "taper":
        p[:, [u, w]] *= (1.0 - rng.uniform(0.3, 0.7) * (t + 0.5))[:, None]
    else:  # bend: the long axis becomes an arc of `total` radians, bending towards +u
        total = np.radians(rng.uniform(40, 90))
        bend = length / total
        theta = p[:, axis] / bend
        p[:, u], p[:, axis] = bend - (bend - p[:, u]) * np.cos(theta), (bend - p[:, u]) * np.sin(theta)
    colours = np.asarray(part.visual.face_colors)[index, :3]
    return _face_coloured(p - (p.max(axis=0) + p.min(axis=0)) / 2, faces, colours)


def _exit_distance(hull: trimesh.Trimesh, origin: np.ndarray, direction: np.ndarray) -> float:
    """How far a ray from `origin` (inside the convex `hull`) travels along unit `direction` before it leaves."""
    normals = hull.face_normals  # (F, 3) outward
    offsets = np.einsum("fc,fc->f", normals, hull.triangles[:, 0]) - normals @ origin  # (F,) > 0 inside
    facing = normals @ direction
    ahead = facing > 1e-9
    return float(np.min(offsets[ahead] / facing[ahead]))


def _direction(rng: np.random.Generator) -> np.ndarray:
    """A unit direction to attach the next part along: half the time upwards (stacking), else anywhere."""
    d = rng.normal(size=3)
    if rng.random() < 0.5:
        d = np.array([0.35 * d[0], 1.0, 0.35 * d[2]])
    return d / np.linalg.norm(d)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """(4, 4) a free random rotation half the time, else an upright part turned about +Y."""
    trimesh = signals.import_whole("trimesh")

    if rng.random() < 0.5:
        return trimesh.transformations.random_rotation_matrix(rand=rng.random(3))
    upright = trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0])  # primitives' +Z axis to +Y
    return trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0.0, 1.0, 0.0]) @ upright


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) hue, saturation, value in [0, 1] -> (..., 3) sRGB uint8-valued int16."""
    h, sat, val = (hsv[..., i] for i in range(3))
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    rgb = val[..., None] - val[..., None] * sat[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return np.round(rgb * 255).astype(np.int16)


def rgb_to_saturation_value(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) sRGB 0..255 -> HSV saturation and value (...,) in [0, 1]."""
    rgb = np.asarray(rgb, float) / 255.0
    value = rgb.max(axis=-1)
    return np.where(value > 0, 1.0 - rgb.min(axis=-1) / np.maximum(value, 1e-12), 0.0), value


def is_held_out_colour(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB 0..255 -> (...,) bool: a pastel of the held-out family (pale and weak), which no training
    colour is: the palette's colours are strong or dark, random ones have saturation >= TRAIN_SATURATION[0]."""
    saturation, value = rgb_to_saturation_value(rgb)
    return (saturation <= HELD_OUT_MAX_SATURATION) & (value >= HELD_OUT_MIN_VALUE)


def _hsv_colours(rng: np.random.Generator, n: int, saturation, value) -> np.ndarray:
    """(n, 3) sRGB int16: n colours of well-spread hues (one per 1/n of the circle, jittered, shuffled)."""
    hues = (rng.uniform() + (rng.permutation(n) + rng.uniform(-0.25, 0.25, n)) / n) % 1.0
    hsv = np.stack([hues, rng.uniform(*saturation, n), rng.uniform(*value, n)], axis=1)
    return hsv_to_rgb(hsv)


def _colours(rng: np.random.Generator, count: int, scheme: str) -> np.ndarray:
    """(count, 2, 3) int16 sRGB: two distinct colours per part, no two parts sharing one."""
    if scheme == "mixed":
        scheme = "palette" if rng.random() < 0.5 else "random"
    if scheme == "palette":
        colours = PALETTE[rng.permutation(len(PALETTE))[: 2 * count]].reshape(count, 2, 3)
        return np.clip(colours + rng.integers(-12, 13, colours.shape), 0, 255)  # a little variety within a hue
    if scheme == "random":
        return _hsv_colours(rng, 2 * count, TRAIN_SATURATION, TRAIN_VALUE).reshape(count, 2, 3)
    if scheme == "pastel":  # the held-out family's only
        return _hsv_colours(rng, 2 * count, PASTEL_SATURATION, PASTEL_VALUE).reshape(count, 2, 3)
    raise ValueError(f"unknown colour scheme {scheme!r}")


def _part_counts(max_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, probabilities) of an object's number of parts: PART_COUNT_P up to 4, MORE_PARTS_P for 5 and 6."""
    weights = np.array([*PART_COUNT_P, MORE_PARTS_P, MORE_PARTS_P][:max_parts])
    if max_parts == len(PART_COUNTS):
        return np.array(PART_COUNTS), np.array(PART_COUNT_P)  # tiny-orbit's, exactly
    return np.arange(1, max_parts + 1), weights / weights.sum()


def _pattern_weights(patterns: tuple[str, ...]) -> np.ndarray:
    if patterns == PATTERNS:
        return np.array(PATTERN_P)  # tiny-orbit's, exactly
    weights = np.array([dict(zip(PATTERNS, PATTERN_P, strict=True)).get(p, MORE_PATTERN_P) for p in patterns])
    return weights / weights.sum()


def random_object(rng: np.random.Generator, settings: ProceduralSettings | None = None) -> trimesh.Trimesh:
    """A seeded object of attached, coloured primitives (module docstring; `settings`: what it may be made of, by
    default tiny-orbit's 1-4 parts), face coloured, normalised into the sphere of radius 0.5 at the origin. The
    same generator state and settings always give the same mesh; it never has a held-out kind."""
    settings = (settings or ProceduralSettings()).check()
    return _object(rng, settings, settings.primitives, settings.colours)


def held_out_object(rng: np.random.Generator) -> trimesh.Trimesh:
    """An object of the held-out family: made as tiny-orbit's objects are (1-4 parts, the same patterns), but at
    least one part a held-out primitive (HELD_OUT_PRIMITIVES), the others any of PRIMITIVES and those, and every
    colour a pastel (`is_held_out_colour`). Training never makes such an object: see ProceduralSettings.check."""
    return _object(rng, ProceduralSettings(), PRIMITIVES + HELD_OUT_PRIMITIVES, "pastel", HELD_OUT_PRIMITIVES)


def _object(
    rng: np.random.Generator, settings: ProceduralSettings, primitives: tuple[str, ...], colour_scheme: str,
    required: tuple[str, ...] = (),
) -> trimesh.Trimesh:  # fmt: skip
    """The generator behind random_object and held_out_object: one part (at a random index) drawn from `required`
    when it is given. The draws of tiny-orbit's settings are exactly those it was trained on."""
    trimesh = signals.import_whole("trimesh")

    counts, count_p = _part_counts(settings.max_parts)
    count = int(rng.choice(counts, p=count_p))
    colours = _colours(rng, count, colour_scheme)
    patterns = [str(p) for p in rng.choice(settings.patterns, size=count, p=_pattern_weights(settings.patterns))]
    if count == 1:  # a lone part turning shows only through its pattern: one that covers every side
        patterns = [str(rng.choice([p for p in COVERING if p in settings.patterns]))]
    elif all(p == "flat" for p in patterns):  # plain, upright primitives stacked on the axis could look the same
        patterns[0] = (
            "two_tone" if "two_tone" in settings.patterns else next(p for p in settings.patterns if p in COVERING)
        )
    forced = int(rng.integers(count)) if required else -1
    parts: list[trimesh.Trimesh] = []
    centres: list[np.ndarray] = []  # each part's own origin, inside its convex hull
    kinds, deformations = [], []
    for k in range(count):
        # 1. the part, coloured in its own frame, maybe deformed with its pattern
        rotation = _rotation(rng)
        up = rotation[:3, :3].T @ np.array([0.0, 1.0, 0.0])
        kinds.append(str(rng.choice(required if k == forced else primitives)))
        part = _pattern(_primitive(kinds[-1], rng), patterns[k], colours[k], up, rng)
        deformations.append("")
        if settings.deform and rng.random() < settings.deform:
            deformations[-1] = str(rng.choice(DEFORMATIONS))
            part = _deform(part, deformations[-1], rng)
        # 2. turn it and attach it to an earlier part, sunk in by OVERLAP of the shallower depth
        part.apply_transform(rotation)
        centre = np.zeros(3)
        if parts:
            j = int(rng.integers(len(parts)))
            d = _direction(rng)
            out_of_parent = _exit_distance(parts[j].convex_hull, centres[j], d)
            into_part = _exit_distance(part.convex_hull, centre, -d)
            centre = centres[j] + (out_of_parent + into_part - OVERLAP * min(out_of_parent, into_part)) * d
            part.apply_translation(centre)
        parts.append(part)
        centres.append(centre)
    mesh = trimesh.util.concatenate(parts)
    # 3. normalise like load_mesh(fit_to="sphere"): bounding box centred, farthest vertex at 0.5
    centre = mesh.bounds.mean(axis=0)
    mesh.apply_translation(-centre)
    mesh.apply_scale(0.5 / float(np.linalg.norm(mesh.vertices, axis=1).max()))
    mesh.metadata["svd3d_procedural"] = {"parts": count, "primitives": kinds, "patterns": patterns,
                                         "deformations": deformations}  # fmt: skip
    return mesh


def procedural_orbit_dataset(
    count: int,
    out: str | Path | None = None,
    *,
    settings: RenderOrbitSettings | None = None,
    generator: ProceduralSettings | None = None,
    seed: int = 0,
) -> OrbitData:
    """`count` procedural objects (`generator`: what they are made of, default ProceduralSettings()) rendered along
    seeded orbits (`settings`, default RenderOrbitSettings(); as `render_orbit_dataset` renders meshes: one sample
    per orbit kind, named "proc-000042#static"), saved to `out` unless it is None. Object i is made and rendered
    from a generator seeded by (seed, i), so any object can be remade alone.

    With any variety (a generator or look other than tiny-orbit's), the manifest's source also records the
    generator settings and, per object, what it was made of and how each orbit was lit and framed ("objects")."""
    # 1. check inputs
    count = whole_number("count", count, 1, unit="objects")
    settings = (settings or RenderOrbitSettings()).check()
    generator = (generator or ProceduralSettings()).check()
    if out is not None:
        check_dataset_output(Path(out))
    log.info("rendering %d procedural objects: %s orbits of %d views at %d px", count, "+".join(settings.orbits),
             settings.frames, settings.size)  # fmt: skip
    # 2. make and render each object
    buffer = OrbitBuffer(count, settings)
    objects = []
    for i in tqdm(range(count), desc="objects", disable=None):
        rng = object_rng(seed, i)
        mesh = random_object(rng, generator)
        rendered = render_object_orbits(mesh, rng, settings)
        buffer.add(f"proc-{i:06d}", rendered)
        objects.append({**mesh.metadata["svd3d_procedural"], "orbits": rendered["looks"]})
    # 3. assemble and save (tiny-orbit's data is recorded as it always was)
    source = {
        "generator": "svd3d.training.procedural",
        "settings": settings.record(),
        "seed": int(seed),
        "count": count,
    }
    if generator != ProceduralSettings() or not settings.is_default():
        source |= {"procedural": generator.record(), "objects": objects}
    data = buffer.data(source)
    if out is not None:
        data.save(out)
    return data
