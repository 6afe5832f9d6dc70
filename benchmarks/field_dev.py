"""Radiance-field reconstruction against ground truth: visual hull vs fitted field on the bench meshes.

For each mesh and orbit (static at elevation 10, dynamic with a 20 degree wobble) it renders 21 views at 576 px,
holds out frames 5, 12 and 18, carves the visual hull (128^3) from the other 18, fits the field
(svd3d.recon.field) and extracts its mesh (svd3d.recon.extract). Metrics follow svd3d.eval.metrics in the renders'
world frame (load_mesh(path, fit_to="sphere"), no re-normalisation): Chamfer (mean of both directional mean L2
distances), F-score at tau, volume IoU on a 64^3 grid; PSNR of the field's renders of the held-out views against
the ground-truth renders, composited on white, over the whole image.

    python benchmarks/field_dev.py                       # all meshes, both orbits
    python benchmarks/field_dev.py --meshes bunny.ply --orbits dynamic --pictures out/   # side-by-side PNGs too
    python benchmarks/field_dev.py --set iterations=200,200,300 --set rays=4096          # override FieldSettings
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from svd3d.cameras import DynamicOrbit, StaticOrbit
from svd3d.eval.metrics import compare_meshes
from svd3d.geometry import load_mesh
from svd3d.image_metrics import psnr
from svd3d.recon.extract import extract_mesh
from svd3d.recon.field import FieldSettings, fit_field
from svd3d.recon.hull import carve_visual_hull
from svd3d.recon.views import load_views
from svd3d.render import render_to_folder

MESHES = Path(__file__).resolve().parents[2] / "shared" / "bench" / "meshes"
NAMES = ("BoxTextured.glb", "Duck.glb", "bunny.ply", "featuretype.STL", "fuze.obj", "suzanne.ply")
ORBITS = {"static": StaticOrbit(elevation=10, num_frames=21), "dynamic": DynamicOrbit(elevation=10, amplitude=20)}
HELD_OUT = (5, 12, 18)


def _settings(overrides: list[str]) -> FieldSettings:
    """FieldSettings with key=value overrides (tuples as comma-separated values)."""
    base = FieldSettings()
    changes = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in {f.name for f in dataclasses.fields(base)}:
            raise SystemExit(f"unknown FieldSettings field {key!r}")
        current = getattr(base, key)
        if isinstance(current, tuple):
            changes[key] = tuple(int(v) for v in value.split(","))
        elif isinstance(current, bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        else:
            changes[key] = type(current)(value)
    return dataclasses.replace(base, **changes)


def _views_folder(mesh: Path, orbit: str, cache: Path) -> Path:
    folder = cache / f"{mesh.stem}_{orbit}"
    if not (folder / "transforms.json").is_file():
        render_to_folder(mesh, ORBITS[orbit].angles(), folder, 576)
    return folder


def _save_pictures(path: Path, field, views, held_out) -> list[float]:
    from PIL import Image

    rows, scores = [], []
    for i in held_out:
        rgb, _ = field.render(views.c2w[i], views.intrinsics)
        scores.append(psnr(rgb, views.images[i]))
        rows.append(np.concatenate([views.images[i], rgb, np.abs(rgb - views.images[i]) * 4], 1))
    if path is not None:
        Image.fromarray((np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)).save(path)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", default=",".join(NAMES), help="comma-separated file names in --mesh-dir")
    parser.add_argument("--mesh-dir", type=Path, default=MESHES)
    parser.add_argument("--orbits", default="static,dynamic")
    parser.add_argument("--cache", type=Path, default=None, help="keep the renders here (default: a temp folder)")
    parser.add_argument("--pictures", type=Path, default=None, help="write held-out GT | field | 4x error PNGs")
    parser.add_argument("--set", action="append", default=[], help="FieldSettings override, key=value")
    parser.add_argument("--tau", type=float, default=0.01, help="F-score distance")
    parser.add_argument("--samples", type=int, default=50000, help="surface samples per mesh for the metrics")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _settings(args.set)
    print(f"settings: {settings}")
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        if args.pictures:
            args.pictures.mkdir(parents=True, exist_ok=True)
        header = (
            f"{'mesh':16s} {'orbit':8s} | {'hull CD':>8s} {'IoU':>6s} | {'field CD':>8s} {'IoU':>6s} "
            f"{'F@' + str(args.tau):>7s} {'PSNR':>6s} | {'fit s':>6s} {'ext s':>6s} {'faces':>7s}"
        )
        print(header)
        print("-" * len(header))
        rows = []
        for name in args.meshes.split(","):
            gt = load_mesh(args.mesh_dir / name, fit_to="sphere")
            for orbit in args.orbits.split(","):
                views = load_views(_views_folder(args.mesh_dir / name, orbit, cache))
                train = views.subset([i for i in range(len(views)) if i not in HELD_OUT])
                hull = carve_visual_hull(train.masks, train.c2w, train.intrinsics, 128)
                hull_scores = compare_meshes(hull.to_mesh(), gt, normalise_meshes=False, tau=args.tau, n=args.samples)
                started = time.perf_counter()
                field = fit_field(train, hull, settings, device=args.device, progress=False)
                fit_s = time.perf_counter() - started
                started = time.perf_counter()
                mesh = extract_mesh(field)
                ext_s = time.perf_counter() - started
                scores = compare_meshes(mesh, gt, normalise_meshes=False, tau=args.tau, n=args.samples)
                picture = args.pictures / f"{Path(name).stem}_{orbit}.png" if args.pictures else None
                if args.pictures:
                    mesh.export(args.pictures / f"{Path(name).stem}_{orbit}.ply")
                held = _save_pictures(picture, field, views, HELD_OUT)
                row = (hull_scores.chamfer, hull_scores.volume_iou, scores.chamfer, scores.volume_iou)
                row += (scores.f_score, float(np.mean(held)), fit_s, ext_s, len(mesh.faces))
                rows.append(row)
                print(
                    f"{Path(name).stem:16s} {orbit:8s} | {row[0]:8.4f} {row[1]:6.3f} | {row[2]:8.4f} {row[3]:6.3f} "
                    f"{row[4]:7.3f} {row[5]:6.2f} | {fit_s:6.1f} {ext_s:6.1f} {len(mesh.faces):7d}",
                    flush=True,
                )
        mean = np.mean(np.array(rows), axis=0)
        print("-" * len(header))
        print(
            f"{'mean':16s} {'':8s} | {mean[0]:8.4f} {mean[1]:6.3f} | {mean[2]:8.4f} {mean[3]:6.3f} "
            f"{mean[4]:7.3f} {mean[5]:6.2f} | {mean[6]:6.1f} {mean[7]:6.1f} {mean[8]:7.0f}"
        )
        print(f"metrics: {hull_scores.protocol}; PSNR on held-out views {HELD_OUT}, 576 px, on white")


if __name__ == "__main__":
    main()
