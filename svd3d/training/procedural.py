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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

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
PRIMITIVES = ("box", "sphere", "cylinder", "cone", "capsule", "torus")
PATTERNS = ("flat", "two_tone", "stripes", "checker")
PART_COUNTS = (1, 2, 3, 4)
PART_COUNT_P = (0.1, 0.3, 0.35, 0.25)  # how often an object has 1, 2, 3 or 4 parts
PATTERN_P = (0.35, 0.25, 0.25, 0.15)
MIN_TILT_DEG = 40.0  # two-tone cuts and stripes lean at least this far from horizontal
OVERLAP = 0.3  # how far an attached part sinks into its parent, as a fraction of the shallower of the two


def _primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One primitive centred at the origin, about 0.3-0.7 units across, no side under a third of the longest."""
    import trimesh

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
    raise ValueError(f"unknown primitive {kind!r}")


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
    import trimesh

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
    import trimesh

    if rng.random() < 0.5:
        return trimesh.transformations.random_rotation_matrix(rand=rng.random(3))
    upright = trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0])  # primitives' +Z axis to +Y
    return trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0.0, 1.0, 0.0]) @ upright


def random_object(rng: np.random.Generator) -> trimesh.Trimesh:
    """A seeded object of 1-4 attached, coloured primitives (module docstring), face coloured, normalised into the
    sphere of radius 0.5 at the origin. The same generator state always gives the same mesh."""
    import trimesh

    count = int(rng.choice(PART_COUNTS, p=PART_COUNT_P))
    colours = PALETTE[rng.permutation(len(PALETTE))[: 2 * count]].reshape(count, 2, 3)
    colours = np.clip(colours + rng.integers(-12, 13, colours.shape), 0, 255)  # a little variety within a hue
    patterns = [str(p) for p in rng.choice(PATTERNS, size=count, p=PATTERN_P)]
    if count == 1:  # a lone part turning shows only through its pattern: one that covers every side
        patterns = [str(rng.choice(["stripes", "checker"]))]
    elif all(p == "flat" for p in patterns):
        patterns[0] = "two_tone"  # plain, upright primitives stacked on the axis could look the same from all round
    parts: list[trimesh.Trimesh] = []
    centres: list[np.ndarray] = []  # each part's own origin, inside its convex hull
    for k in range(count):
        # 1. the part, coloured in its own frame
        rotation = _rotation(rng)
        up = rotation[:3, :3].T @ np.array([0.0, 1.0, 0.0])
        part = _pattern(_primitive(str(rng.choice(PRIMITIVES)), rng), patterns[k], colours[k], up, rng)
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
    mesh.metadata["svd3d_procedural"] = {"parts": count}
    return mesh


def procedural_orbit_dataset(
    count: int,
    out: str | Path | None = None,
    *,
    settings: RenderOrbitSettings | None = None,
    seed: int = 0,
) -> OrbitData:
    """`count` procedural objects rendered along seeded orbits (`settings`, default RenderOrbitSettings(); as
    `render_orbit_dataset` renders meshes: one sample per orbit kind, named "proc-000042#static"), saved to `out`
    unless it is None. Object i is made and rendered from a generator seeded by (seed, i), so any object can be
    remade alone."""
    # 1. check inputs
    count = whole_number("count", count, 1, unit="objects")
    settings = (settings or RenderOrbitSettings()).check()
    if out is not None:
        check_dataset_output(Path(out))
    log.info("rendering %d procedural objects: %s orbits of %d views at %d px", count, "+".join(settings.orbits),
             settings.frames, settings.size)  # fmt: skip
    # 2. make and render each object
    buffer = OrbitBuffer(count, settings)
    for i in tqdm(range(count), desc="objects", disable=None):
        rng = object_rng(seed, i)
        buffer.add(f"proc-{i:06d}", render_object_orbits(random_object(rng), rng, settings))
    # 3. assemble and save
    source = {
        "generator": "svd3d.training.procedural",
        "settings": settings.record(),
        "seed": int(seed),
        "count": count,
    }
    data = buffer.data(source)
    if out is not None:
        data.save(out)
    return data
