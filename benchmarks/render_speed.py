"""Mesh rendering speed (svd3d.render, open3d RaycastingScene on the CPU), and a contact sheet to look at.

Times `render_views` for 21 views of a static orbit (10 degrees elevation) at 576 x 576 for every mesh in the bench
folder (normalised as `render_to_folder` does: bounding sphere of radius 0.5) plus a subdivided icosphere of
~20k faces, on this machine's threads. Loading is not timed; each time is
the median of --repeats runs after one warm-up. Prints one table (mesh, faces, seconds, views/s) and the versions.

    python benchmarks/render_speed.py                          # /work/shared/bench/meshes, default supersample
    python benchmarks/render_speed.py --fit-to cube            # fill the cube (objects may leave the frame)
    python benchmarks/render_speed.py --supersample 1 --repeats 5
    python benchmarks/render_speed.py --sheet out/render_sheet.png --sheet-views 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from svd3d.cameras import StaticOrbit
from svd3d.geometry import MESH_SUFFIXES, load_mesh
from svd3d.render import DEFAULT_SUPERSAMPLE, render_views

DEFAULT_MESHES = Path(os.environ.get("SVD3D_BENCH_MESHES", "/work/shared/bench/meshes"))
TILE = 192  # side of each view on the sheet
LABEL = 18


def icosphere(faces: int = 20_000):
    """A unit-diameter icosphere with at least `faces` triangles (20 * 4^k)."""
    import trimesh

    level = 0
    while 20 * 4**level < faces:
        level += 1
    return trimesh.creation.icosphere(subdivisions=level, radius=0.5)


def sheet(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """One row per mesh: its views (RGBA composited on white; the frame border drawn grey), name below."""
    cols = max(len(views) for _, views in rows)
    canvas = Image.new("RGB", (cols * TILE, len(rows) * (TILE + LABEL)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (name, views) in enumerate(rows):
        y = r * (TILE + LABEL)
        for c, view in enumerate(views):
            tile = Image.fromarray(view[..., :3]).resize((TILE, TILE), Image.Resampling.LANCZOS)
            canvas.paste(tile, (c * TILE, y))
            draw.rectangle([c * TILE, y, (c + 1) * TILE - 1, y + TILE - 1], outline=(170, 170, 170))
        draw.text((4, y + TILE + 2), name, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("meshes", nargs="?", type=Path, default=DEFAULT_MESHES, help="folder of meshes")
    parser.add_argument("--size", type=int, default=576)
    parser.add_argument("--views", type=int, default=21)
    parser.add_argument("--elevation", type=float, default=10.0)
    parser.add_argument("--supersample", type=int, default=DEFAULT_SUPERSAMPLE, help="rays per edge pixel: s x s")
    parser.add_argument("--fit", type=float, default=1.0, help="size of the normalised mesh (see load_mesh)")
    parser.add_argument("--fit-to", choices=["sphere", "cube"], default="sphere", help="what --fit measures")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    parser.add_argument("--sheet-views", type=int, default=7, help="views per mesh on the sheet (evenly spaced)")
    args = parser.parse_args()

    import open3d
    import trimesh

    cases = []
    if args.meshes.is_dir():
        files = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
        cases += [(p.name, load_mesh(p, fit=args.fit, fit_to=args.fit_to)) for p in files]
    else:
        print(f"(no mesh folder at {args.meshes}; set SVD3D_BENCH_MESHES)")
    cases.append(("icosphere", icosphere()))
    elevations, azimuths = StaticOrbit(args.elevation, args.views).angles()

    print(
        f"open3d {open3d.__version__}, trimesh {trimesh.__version__}, numpy {np.__version__}, {os.cpu_count()} threads"
    )
    print(f"{args.views} views at {args.size}x{args.size}, supersample {args.supersample}, median of {args.repeats}")
    print(f"{'mesh':<20} {'faces':>8} {'seconds':>8} {'views/s':>8}")
    rows = []
    for name, mesh in cases:
        render_views(mesh, elevations[:1], azimuths[:1], args.size, supersample=args.supersample)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = render_views(mesh, elevations, azimuths, args.size, supersample=args.supersample)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        print(f"{name:<20} {len(mesh.faces):>8} {seconds:>8.2f} {args.views / seconds:>8.1f}")
        pick = np.linspace(0, args.views, args.sheet_views, endpoint=False).round().astype(int)
        rows.append((f"{name}  az {', '.join(f'{azimuths[i]:.0f}' for i in pick)}", result.rgba[pick]))
    if args.sheet is not None:
        sheet(rows, args.sheet)


if __name__ == "__main__":
    main()
