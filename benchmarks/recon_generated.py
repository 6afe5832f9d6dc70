"""Reconstruction on simulated generated views: ground-truth renders degraded the way a view generator errs.

For each mesh in the bench folder: 21 views on the static 10-degree orbit at 576x576 (benchmarks/recon.py's renders,
light and held-out views), then, per level of `svd3d.recon.perturb.LEVELS` (clean, mild, strong), every view but
the input view (frame 0) perturbed with seeded draws (image-plane drift, scale, rotation, colour and brightness
drift, blur; strong adds a round trip through 64 px). `svd3d recon` runs on the 18 training views; the mesh is
scored against the ground truth (svd3d.eval.metrics: Chamfer, F-score, volume IoU, normal consistency) and its
texture at the 3 held-out cameras against the clean renders. Prints one table per level (means over meshes, then
per mesh).

    python benchmarks/recon_generated.py [--meshes DIR] [--levels clean mild strong] [--methods hull field]
                                         [--only Duck bunny] [--variant NAME] [--keep DIR] [--json OUT]
                                         [--sheet PNG]

--levels also takes mild-drift, mild-colour and mild-blur: the mild level's errors one kind at a time (PARTS).
--variant picks a named set of reconstruction settings (VARIANTS below) to measure what each robustness lever
buys; "default" is the code as it stands. --sheet also draws the meshes of this run: one row per mesh and level,
the true mesh then each method and variant, lit, from a camera no training view had (SHEET_CAMERA).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recon import HELD_OUT, LIGHT, ORBITS, score, split  # noqa: E402  (benchmarks/recon.py, beside this file)

from svd3d.cameras import read_transforms  # noqa: E402
from svd3d.recon.perturb import LEVELS, perturb_views  # noqa: E402
from svd3d.recon.pipeline import reconstruct  # noqa: E402
from svd3d.render import render_to_folder  # noqa: E402

ORBIT = "static"
# the mild level's errors one kind at a time, to measure what each costs (--levels mild-drift ...)
PARTS = {
    "mild-drift": dataclasses.replace(LEVELS["mild"], color=0.0, brightness=0.0, blur_px=0.0),
    "mild-colour": dataclasses.replace(LEVELS["mild"], shift=0.0, scale=0.0, rotate_deg=0.0, blur_px=0.0),
    "mild-blur": dataclasses.replace(LEVELS["mild"], shift=0.0, scale=0.0, rotate_deg=0.0, color=0.0, brightness=0.0),
}
ALL_LEVELS = {**LEVELS, **PARTS}
# named reconstruction settings: {"align": {align.py constant: value}, "extract": {extract.py constant: value},
# "pipeline": {pipeline.py constant: value}, "field": {FieldSettings field: value}}
VARIANTS: dict[str, dict] = {
    "default": {},  # the code as it stands: a drift pass, a 1 % tolerant bound and per-view warps (FieldSettings)
    # one pass: no drift pass before the hull is carved again (the default before FieldSettings.drift_stages)
    "onepass": {"field": {"drift_stages": 0}},
    "drift1": {"field": {"drift_stages": 1}},
    "notrans": {"field": {"translation_gauge": "none"}},  # warps may move the object (before the translation gauge)
    "transall": {"field": {"translation_gauge": "all"}},  # x, y and z (the default: only the input's depth axis)
    "drifthalf": {"field": {"drift_iterations": 0.5}},  # the drift pass at half its stages' iterations
    "driftthird": {"field": {"drift_iterations": 1 / 3}},
    # before the levers (the default until this benchmark chose them): the exact hull bounds the field, no per-view
    # warps or colour
    "baseline": {
        "field": {"hull_tolerance": 0.0, "warp": False, "align": False, "appearance": False, "drift_stages": 0}
    },
    # one lever at a time: the tolerant bound (1 % / 2 % of the side; the input view's exact) without warps, the
    # warps inside the exact hull; the default under its old name; a 2 % bound with warps
    "tol1": {"field": {"warp": False}},
    "tol2": {"field": {"hull_tolerance": 0.02, "warp": False}},
    "warp": {"field": {"hull_tolerance": 0.0}},
    "tol1+warp": {},
    "tol2+warp": {"field": {"hull_tolerance": 0.02}},
    # the warps' prior strength, learning rate, scale gauge (FieldSettings.warp_gauge); per-view colour beside them
    "tol1+warp-p1e-2": {"field": {"warp_prior": 1e-2}},
    "tol1+warp-lr3e-3": {"field": {"lr_warp": 3e-3}},
    "tol1+warp-nogauge": {"field": {"warp_gauge": False}},
    "tol1+warp+app": {"field": {"appearance": True}},
    # the tolerant band's starting density (FieldSettings.band_start): solid as the hull (1), or a fraction
    "tol1+warp-solid": {"field": {"band_start": 1.0}},
    "tol1+warp-band0.1": {"field": {"band_start": 0.1}},
    "tol1+warp-band0.03": {"field": {"band_start": 0.03}},
    "tol2+warp-band0.1": {"field": {"hull_tolerance": 0.02, "band_start": 0.1}},
    # the mask loss's weight (FieldSettings.mask_weight 0.1): what grows the field into the tolerant band
    "mask0.3": {"field": {"mask_weight": 0.3}},
    "mask1": {"field": {"mask_weight": 1.0}},
    # no view-dependent colour (FieldSettings.sh_voxels 0): parallax of a surface off its true place cannot be
    # painted away as a colour that changes with the view
    "nosh": {"field": {"sh_voxels": 0}},
    "warp+nosh": {"field": {"hull_tolerance": 0.0, "sh_voxels": 0}},
    # levers measured before the warps: per-view colour, the coarse field's alignment (tolerant bound), the
    # silhouette alignment before the hull (svd3d.recon.align.align_silhouettes); density smoothness
    "tol2+app": {"field": {"hull_tolerance": 0.02, "warp": False, "appearance": True}},
    "tol2+align": {"field": {"hull_tolerance": 0.02, "warp": False, "align": True}},
    "silalign": {"align": {"RECON_ALIGN_SILHOUETTES": True}, "field": {"hull_tolerance": 0.0, "warp": False}},
    "tv": {"field": {"tv_density": 1e-3}},
    # small views (--size 64): every stage of the field kept, the views upsampled to 96, 144 and 192 px (what
    # FieldSettings.for_views cuts)
    "uncut": {"uncut": True},
    # Taubin smoothing of the field's surface before decimation (as the hull's): bumps from views that disagree
    "smooth10": {"pipeline": {"SMOOTH_ITERATIONS": {"hull": 10, "field": 10, "nerfacto": 0}}},
    "smooth30": {"pipeline": {"SMOOTH_ITERATIONS": {"hull": 10, "field": 30, "nerfacto": 0}}},
    # the field's density blurred (Gaussian, sigma in field cells) before marching cubes: the default 0.5
    # (svd3d.recon.extract.SMOOTH_CELLS) against none, or more
    "noblur": {"extract": {"SMOOTH_CELLS": 0.0}},
    "blur0.75": {"extract": {"SMOOTH_CELLS": 0.75}},
    "blur1": {"extract": {"SMOOTH_CELLS": 1.0}},
    "blur2": {"extract": {"SMOOTH_CELLS": 2.0}},
    # the floor cut below the views' silhouette rims (svd3d.recon.pipeline.FLOOR_QUANTILE, default 0.25): at the
    # lowest rim (the default before), or at the median
    "floor-min": {"pipeline": {"FLOOR_QUANTILE": 0.0}},
    "floor-q50": {"pipeline": {"FLOOR_QUANTILE": 0.5}},
}


@contextlib.contextmanager
def variant_settings(name: str):
    """Temporarily apply a VARIANTS entry: module constants and FieldSettings defaults."""
    import svd3d.recon.align as align_mod
    import svd3d.recon.extract as extract_mod
    import svd3d.recon.field as field_mod
    import svd3d.recon.pipeline as pipeline_mod

    spec = VARIANTS[name]
    modules = {"align": align_mod, "pipeline": pipeline_mod, "extract": extract_mod}
    saved = {(m, k): getattr(modules[m], k) for m in modules for k in spec.get(m, {})}
    saved_settings, saved_cut = pipeline_mod.FieldSettings, field_mod.FieldSettings.for_views
    try:
        for m, k in saved:
            setattr(modules[m], k, spec[m][k])
        if spec.get("field"):  # the pipeline builds its FieldSettings by the name it imported
            overrides = spec["field"]
            base = saved_settings

            def settings(**kwargs):
                return base(**{**overrides, **kwargs})

            pipeline_mod.FieldSettings = settings
        if spec.get("uncut"):
            field_mod.FieldSettings.for_views = lambda self, size: self
        yield
    finally:
        for (m, k), v in saved.items():
            setattr(modules[m], k, v)
        pipeline_mod.FieldSettings = saved_settings
        field_mod.FieldSettings.for_views = saved_cut


def perturbed_folder(views_dir: Path, out_dir: Path, level: str, seed: int) -> Path:
    """views_dir's images perturbed at `level` (frame 0 untouched) with the same transforms.json, in out_dir."""
    if out_dir.exists():
        return out_dir
    _, frames = read_transforms(views_dir / "transforms.json")
    rgba = np.stack([np.asarray(Image.open(views_dir / f.file_path).convert("RGBA")) for f in frames])
    out = perturb_views(rgba, ALL_LEVELS[level], seed)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    shutil.copy(views_dir / "transforms.json", tmp / "transforms.json")
    for f, image in zip(frames, out, strict=True):
        Image.fromarray(image, "RGBA").save(tmp / f.file_path)
    tmp.rename(out_dir)
    return out_dir


def run_case(mesh_path: Path, level: str, method: str, variant: str, root: Path, seed: int, size: int = 576) -> dict:
    views_dir = root / f"{mesh_path.stem}-{ORBIT}-{size}"
    if not views_dir.exists():
        render_to_folder(mesh_path, ORBITS[ORBIT].angles(), views_dir, size, light=LIGHT)
    level_dir = perturbed_folder(views_dir, root / f"{mesh_path.stem}-{ORBIT}-{size}-{level}", level, seed)
    train_dir = root / f"{mesh_path.stem}-{size}-{level}-{method}-{variant}"
    shutil.rmtree(train_dir, ignore_errors=True)
    split(level_dir, train_dir)
    with variant_settings(variant):
        start = time.perf_counter()
        result = reconstruct(train_dir, method=method, progress=False)
        seconds = time.perf_counter() - start
    scores, held_psnr = score(result.mesh, mesh_path, views_dir)  # held out: the clean renders, the truth
    return {
        "mesh": mesh_path.name,
        "level": level,
        "method": method,
        "variant": variant,
        "size": size,
        "seconds": seconds,
        "chamfer": scores.chamfer,
        "f_score": scores.f_score,
        "iou": scores.volume_iou,
        "normal": scores.normal_consistency,
        "psnr": held_psnr,
        "protocol": scores.protocol,
    }


SHEET_CAMERA = (25.0, 40.0)  # elevation, azimuth (degrees) of the sheet's renders: above the 10-degree orbit
SHEET_SIDE = 256


def write_sheet(path: Path, rows: list[dict], meshes: list[Path], root: Path) -> None:
    """The --sheet picture: for each (mesh, level) of `rows`, the true mesh (in the renders' frame), then the mesh
    each (method, variant) of this run made, all rendered lit at SHEET_CAMERA, captioned with their Chamfer."""
    from svd3d import media
    from svd3d.cameras import Intrinsics, orbit_c2w
    from svd3d.geometry import load_mesh
    from svd3d.render import render_cameras

    c2w = orbit_c2w([SHEET_CAMERA[0]], [SHEET_CAMERA[1]])
    intrinsics = Intrinsics.from_fov(SHEET_SIDE, SHEET_SIDE)
    look = lambda mesh: render_cameras(mesh, c2w, intrinsics, light=LIGHT, supersample=2).rgba[0]  # noqa: E731
    by_name = {p.name: p for p in meshes}
    cases = list(dict.fromkeys((r["mesh"], r["level"]) for r in rows))
    columns = list(dict.fromkeys((r["method"], r["variant"]) for r in rows))
    # a variant of the field's settings alone leaves the hull as it is: one hull column
    hulls = [c for c in columns if c[0] == "hull" and set(VARIANTS[c[1]]) <= {"field"}]
    columns = [c for c in columns if c not in hulls[1:]]
    images, labels = [], []
    for mesh_name, level in cases:
        images.append(look(load_mesh(by_name[mesh_name], fit_to="sphere")))  # the renders' own frame
        labels.append(f"{Path(mesh_name).stem}, truth")
        for method, variant in columns:
            row = next(r for r in rows if (r["mesh"], r["level"], r["method"], r["variant"]) ==
                       (mesh_name, level, method, variant))  # fmt: skip
            folder = root / f"{Path(mesh_name).stem}-{row['size']}-{level}-{method}-{variant}"
            images.append(look(load_mesh(folder / "mesh.glb", normalise=False)))  # svd3d recon's frame
            name = "hull" if (method, variant) in hulls else f"{method}, {variant}"
            labels.append(f"{level}, {name}: {row['chamfer']:.4f}")
    media.contact_sheet(images, labels, columns=1 + len(columns), cell=SHEET_SIDE).save(path)
    print(f"wrote {path}")


def print_tables(rows: list[dict]) -> None:
    head = "| {} | method | variant | Chamfer | F-score | IoU | normal cons. | held-out PSNR (dB) | seconds |"
    rule = "|---|---|---|---|---|---|---|---|---|"

    def line(label, r):
        return (f"| {label} | {r['method']} | {r['variant']} | {r['chamfer']:.4f} | {r['f_score']:.3f} | {r['iou']:.3f} "
                f"| {r['normal']:.3f} | {r['psnr']:.1f} | {r['seconds']:.1f} |")  # fmt: skip

    keys = ("chamfer", "f_score", "iou", "normal", "psnr", "seconds")
    groups = sorted(
        {(r["level"], r["method"], r["variant"]) for r in rows}, key=lambda g: (list(ALL_LEVELS).index(g[0]),) + g[1:]
    )
    print("\nmeans over meshes")
    print(head.format("level"))
    print(rule)
    for level, method, variant in groups:
        sel = [r for r in rows if (r["level"], r["method"], r["variant"]) == (level, method, variant)]
        mean = {k: statistics.mean(r[k] for r in sel) for k in keys}
        print(line(f"{level} ({len(sel)})", {**mean, "method": method, "variant": variant}))
    print("\nper mesh")
    print(head.format("level / mesh"))
    print(rule)
    for level, method, variant in groups:
        for r in rows:
            if (r["level"], r["method"], r["variant"]) == (level, method, variant):
                print(line(f"{level} / {r['mesh']}", r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SVD3D_BENCH_MESHES", Path(__file__).resolve().parents[2] / "shared/bench/meshes")
    parser.add_argument("--meshes", type=Path, default=Path(default))
    parser.add_argument("--only", nargs="*", default=None, help="mesh file stems to run (default: all)")
    parser.add_argument("--levels", nargs="*", default=list(LEVELS), choices=list(ALL_LEVELS))
    parser.add_argument("--methods", nargs="*", default=["hull", "field"])
    parser.add_argument("--variant", nargs="*", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    parser.add_argument("--size", type=int, default=576, help="views rendered at this size (the bundled models: 64)")
    parser.add_argument("--keep", type=Path, default=None, help="keep renders and outputs in this folder (reused)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--report", type=Path, nargs="*", default=None, help="only print the tables of JSON files")
    parser.add_argument("--sheet", type=Path, default=None, help="also draw this run's meshes into this PNG")
    args = parser.parse_args()
    meshes = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in (".glb", ".obj", ".ply", ".stl"))
    if args.report:  # with --sheet and --keep: drawn from the kept outputs of those runs
        rows = [r for path in args.report for r in json.loads(path.read_text())]
        print_tables(rows)
        if args.sheet and args.keep:
            write_sheet(args.sheet, rows, meshes, args.keep)
        return
    if args.only:
        meshes = [p for p in meshes if p.stem in args.only]
    root = args.keep or Path(tempfile.mkdtemp(prefix="svd3d-recon-generated-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for mesh in meshes:
        for level in args.levels:
            for variant in args.variant:
                for method in args.methods:
                    row = run_case(mesh, level, method, variant, root, args.seed, args.size)
                    rows.append(row)
                    if args.json:  # written as it goes: a partial run still leaves its rows
                        args.json.write_text(json.dumps(rows, indent=1))
                    print(f"  {row['mesh']:16s} {level:7s} {method:6s} {variant:10s} {row['seconds']:6.1f} s  "
                          f"chamfer {row['chamfer']:.4f}  IoU {row['iou']:.3f}  normal {row['normal']:.3f}  "
                          f"PSNR {row['psnr']:.1f}", flush=True)  # fmt: skip
    print(f"\n21 views on the static 10-degree orbit at {args.size} px, 3 held out {HELD_OUT} (PSNR against clean renders); "
          f"{os.cpu_count()} CPUs; perturbation seed {args.seed}; {rows[0]['protocol']}; F-score tau 0.01")  # fmt: skip
    for name in args.levels:
        print(f"  {name}: {dataclasses.asdict(ALL_LEVELS[name])}")
    print_tables(rows)
    if args.sheet:
        write_sheet(args.sheet, rows, meshes, root)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
