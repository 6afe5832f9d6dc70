"""Reconstruction on ground-truth renders of every bench mesh: hull vs field (vs nerfacto where installed).

For each mesh in the bench folder and each orbit (static at 10 degrees; dynamic around 10 degrees), render 21 views
at 576x576 with svd3d's renderer (a fixed world light, so shading agrees between views), hold out 3 views, run
`svd3d recon` on the other 18, and print one table: seconds, faces, Chamfer, F-score, volume IoU (protocol of
svd3d.eval.metrics, unit-box normalised), and PSNR of the textured mesh at the 3 held-out cameras.

    python benchmarks/recon.py [--meshes DIR] [--methods hull field] [--orbits static dynamic]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from svd3d.cameras import CameraFrame, DynamicOrbit, StaticOrbit, read_transforms, write_transforms
from svd3d.eval.metrics import compare_meshes
from svd3d.geometry import load_mesh
from svd3d.image_metrics import psnr
from svd3d.recon.pipeline import reconstruct
from svd3d.recon.views import load_views
from svd3d.render import render_cameras, render_to_folder

HELD_OUT = (5, 12, 18)
LIGHT = (0.3, 0.8, 0.5)  # world-space light direction: the same shading in every view
ORBITS = {"static": StaticOrbit(10.0, 21), "dynamic": DynamicOrbit(10.0, 21, amplitude=20.0, seed=0)}


def split(folder: Path, train_dir: Path) -> None:
    """A nerfstudio folder holding every view but the held-out ones (frame 0, the input view, stays first)."""
    intr, frames = read_transforms(folder / "transforms.json")
    (train_dir / "images").mkdir(parents=True)
    keep = []
    for i, frame in enumerate(frames):
        if i in HELD_OUT:
            continue
        shutil.copy(folder / frame.file_path, train_dir / frame.file_path)
        keep.append(CameraFrame(frame.file_path, frame.c2w, frame.elevation, frame.azimuth))
    write_transforms(train_dir / "transforms.json", keep, intr)


def score(mesh, mesh_path: Path, views_dir: Path):
    """(compare_meshes scores against the true mesh, mean PSNR of the textured mesh at the held-out cameras
    against the renders in `views_dir`)."""
    gt = load_mesh(mesh_path, fit_to="sphere")  # the renders' own frame
    held = load_views(views_dir).subset(list(HELD_OUT))
    rendered = render_cameras(mesh, held.c2w, held.intrinsics, light=None, supersample=1)
    held_psnr = statistics.mean(psnr(rendered.rgba[i, ..., :3] / 255.0, held.images[i]) for i in range(len(held)))
    return compare_meshes(mesh, gt), held_psnr


def run_case(mesh_path: Path, orbit: str, method: str, root: Path) -> dict:
    views_dir = root / f"{mesh_path.stem}-{orbit}"
    if not views_dir.exists():
        render_to_folder(mesh_path, ORBITS[orbit].angles(), views_dir, 576, light=LIGHT)
    train_dir = root / f"{mesh_path.stem}-{orbit}-{method}"
    shutil.rmtree(train_dir, ignore_errors=True)
    split(views_dir, train_dir)
    start = time.perf_counter()
    result = reconstruct(train_dir, method=method, progress=False)
    seconds = time.perf_counter() - start
    scores, held_psnr = score(result.mesh, mesh_path, views_dir)
    return {
        "mesh": mesh_path.name,
        "orbit": orbit,
        "method": method,
        "seconds": seconds,
        "faces": len(result.mesh.faces),
        "chamfer": scores.chamfer,
        "f_score": scores.f_score,
        "iou": scores.volume_iou,
        "psnr": held_psnr,
        "protocol": scores.protocol,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SVD3D_BENCH_MESHES", Path(__file__).resolve().parents[2] / "shared/bench/meshes")
    parser.add_argument("--meshes", type=Path, default=Path(default))
    parser.add_argument("--methods", nargs="*", default=["hull", "field"])
    parser.add_argument("--orbits", nargs="*", default=list(ORBITS))
    parser.add_argument("--keep", type=Path, default=None, help="keep renders and outputs in this folder")
    args = parser.parse_args()
    meshes = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in (".glb", ".obj", ".ply", ".stl"))
    root = args.keep or Path(tempfile.mkdtemp(prefix="svd3d-recon-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for mesh in meshes:
        for orbit in args.orbits:
            for method in args.methods:
                row = run_case(mesh, orbit, method, root)
                rows.append(row)
                print(f"  {row['mesh']:16s} {orbit:7s} {method:8s} {row['seconds']:6.1f} s", flush=True)
    print(
        f"\n21 views at 576 px, 3 held out {HELD_OUT}; {os.cpu_count()} CPUs; {rows[0]['protocol']}; F-score tau 0.01"
    )
    print("| mesh | orbit | method | seconds | faces | Chamfer | F-score | IoU | held-out PSNR (dB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mesh']} | {r['orbit']} | {r['method']} | {r['seconds']:.1f} | {r['faces']} | {r['chamfer']:.4f} "
              f"| {r['f_score']:.3f} | {r['iou']:.3f} | {r['psnr']:.1f} |")  # fmt: skip
    for method in args.methods:
        sel = [r for r in rows if r["method"] == method]
        print(f"| **mean** | | {method} | {statistics.mean(r['seconds'] for r in sel):.1f} | | "
              f"{statistics.mean(r['chamfer'] for r in sel):.4f} | {statistics.mean(r['f_score'] for r in sel):.3f} | "
              f"{statistics.mean(r['iou'] for r in sel):.3f} | {statistics.mean(r['psnr'] for r in sel):.1f} |")  # fmt: skip
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
