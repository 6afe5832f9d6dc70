"""Posed views -> a clean, textured, engine-ready mesh, as one unrolled function.

masks -> visual hull (+ the azimuth-direction check and a flat cut below the lowest rim) -> radiance field (or the hull, or nerfacto) -> marching cubes
-> cleanup -> decimation -> UV unwrap -> texture bake -> export, then quality numbers svd3d can compute itself.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from svd3d import defaults, media, outputs
from svd3d.cameras import angles_from_c2w, orbit_c2w
from svd3d.devices import resolve_device
from svd3d.errors import SVD3DError
from svd3d.image_metrics import psnr
from svd3d.recon import align as align_module
from svd3d.recon.align import align_silhouettes, compose, warp_views
from svd3d.recon.export import check_height, export_mesh, files_written, parse_formats
from svd3d.recon.extract import extract_mesh
from svd3d.recon.field import FieldSettings, fit_field, fitted_views
from svd3d.recon.hull import carve_visual_hull, cut_below, lowest_rim_height, silhouette_iou
from svd3d.recon.mesh import check_faces, cleanup, decimate, faces_for_views
from svd3d.recon.nerfstudio import reconstruct_nerfacto
from svd3d.recon.texture import apply_texture, bake_texture, bake_vertex_colors, texture_for_views, unwrap
from svd3d.recon.views import check_folder, downscale_views, load_views
from svd3d.render import render_cameras
from svd3d.runinfo import Timer, command_line, versions

log = logging.getLogger(__name__)

METHODS = ("field", "hull", "nerfacto")
DIRECTION_CHECK_RESOLUTION = 96
CHECK_SIZE = 144  # the direction check works on masks downscaled to about this size
MIRROR_MARGIN = 0.02  # the mirrored hull must re-project this much better (mean IoU) before cameras are flipped
# the floor is this quantile of the views' lowest rim heights, not the lowest: one generated view that drifted down
# lowers the lowest by far (its bottom rows look under the object, into the hull's wedge), and the flat cut below it
# then leaves a skirt. Measured (benchmarks/recon_generated.py, 4 bench meshes, 576 px): the strong level's floor
# fell 0.06 below the Duck's true bottom; Chamfer 0.0322 -> 0.0255 (Duck 0.0226 -> 0.0102), mild 0.0196 -> 0.0192,
# clean 0.0160 -> 0.0162 (the median: strong 0.0253, clean 0.0168, a voxel of the Duck's and suzanne's bottoms cut)
FLOOR_QUANTILE = 0.25
# Taubin passes (no shrinkage) on each method's surface: a hull's voxel staircase shades as speckles
SMOOTH_ITERATIONS = {"hull": 10, "field": 0, "nerfacto": 0}


@dataclass(frozen=True)
class ReconSettings:
    method: str
    formats: tuple[str, ...]
    faces: int | str  # triangle budget, or "auto" (faces_for_views)
    texture: int | str  # texture side in pixels, or "auto" (texture_for_views); 0 with vertex colours (--no-uv)
    height: float | None
    hull_resolution: int
    seed: int
    device: str


@dataclass
class ReconResult:
    mesh: object  # trimesh.Trimesh, final (textured or vertex-coloured), svd3d's frame (or scaled by height)
    files: list[Path]
    report: dict  # what recon.json holds


def check_direction(views, resolution: int = DIRECTION_CHECK_RESOLUTION) -> dict:
    """Carve the hull with the cameras as given and with azimuths mirrored; report which re-projects better.

    For orbit cameras (all looking at the origin). A mirrored winner means the views turn the other way than
    their cameras say (the generating model's recorded direction is wrong)."""
    elev, azim, radius = angles_from_c2w(views.c2w)
    if not np.allclose(orbit_c2w(elev, azim, radius), views.c2w, atol=1e-4):
        return {"checked": False, "reason": "cameras are not an orbit looking at the origin"}
    mirrored = orbit_c2w(elev, -azim, radius)
    _, masks, intrinsics = downscale_views(views.masks, views.intrinsics, CHECK_SIZE, whole_factor=True)
    resolution = min(resolution, max(intrinsics.width, intrinsics.height))  # no finer than the masks' pixels
    scores = {}
    for name, c2w in (("as given", views.c2w), ("mirrored", mirrored)):
        hull = carve_visual_hull(masks, c2w, intrinsics, resolution)
        scores[name] = float(silhouette_iou(hull, masks, c2w, intrinsics).mean()) if hull.occupancy.any() else 0.0
    flip = scores["mirrored"] > scores["as given"] + MIRROR_MARGIN
    return {"checked": True, "mean_iou": scores, "mirrored": bool(flip), "c2w": mirrored if flip else views.c2w}


@outputs.holds_output(lambda args: args["output"] or args["folder"])
def reconstruct(
    folder: str | Path,
    *,
    method: str = defaults.RECON_METHOD,
    formats: str | tuple = defaults.MESH_FORMATS,
    faces: str | int = defaults.FACES,
    texture: int | str = defaults.TEXTURE,
    uv: bool = True,
    height: float | None = None,
    output: str | Path | None = None,
    device: str = defaults.DEVICE,
    seed: int = defaults.RECON_SEED,
    hull_resolution: int = 128,
    iterations: int | None = None,
    progress: bool = True,
) -> ReconResult:
    """Reconstruct the object seen in a nerfstudio folder (an `svd3d orbit` or `svd3d render` output) as a mesh.

    Writes mesh.<format> for each format, preview.png (views beside renders of the mesh) and recon.json into
    `output` (default: the input folder)."""
    timer = Timer()

    # 1. check inputs
    settings = check_recon_options(
        method=method, formats=formats, faces=faces, texture=texture, uv=uv, height=height, device=device,
        seed=seed, hull_resolution=hull_resolution, iterations=iterations,
    )  # fmt: skip
    fmts, height, dev = settings.formats, settings.height, resolve_device(settings.device)
    folder = check_folder(folder)
    out_dir = Path(output) if output is not None else folder
    outputs.check_addable(out_dir, output_names(fmts))

    # 2. views and masks
    with timer("load"):
        views = load_views(folder)
    log.info("recon: %d views %dx%d from %s (masks from %s), method %s", len(views), views.intrinsics.width,
             views.intrinsics.height, folder, views.mask_source, method)  # fmt: skip

    # 3. the azimuth-direction check, then the visual hull
    with timer("hull"):
        direction = check_direction(views)
        if direction.get("mirrored"):
            log.warning(
                "the views turn the other way than their cameras say (mirrored hull re-projects %.3f vs %.3f): "
                "using mirrored azimuths; the generating model's recorded azimuth direction looks wrong",
                direction["mean_iou"]["mirrored"],
                direction["mean_iou"]["as given"],
            )
            views.c2w = direction["c2w"]
    # generated views drift by a percent or two from view to view, and a hull is an intersection: every drifted
    # silhouette would cut the others' geometry. With align.py's RECON_ALIGN_SILHOUETTES (off by default: it moved
    # clean views too), each view but the trusted input view is moved (shift and scale) onto the silhouette of the
    # hull of the others first; the hull, the field, the bake and the quality numbers below use the aligned views
    alignment, alignment_note = None, "moved onto the silhouette of the other views' hull (svd3d/recon/align.py)"
    with timer("align"):
        if align_module.RECON_ALIGN_SILHOUETTES and len(views) > 2:
            alignment = align_silhouettes(views.masks, views.c2w, views.intrinsics, views.weights > 1)
            views = warp_views(views, alignment)
            moved = np.hypot(alignment[:, 0], alignment[:, 1])
            log.info("aligned the silhouettes: views moved by up to %.1f px (mean %.1f), scaled by up to %.1f%%",
                     moved.max(), moved.mean(), 100 * np.abs(np.expm1(alignment[:, 2])).max())  # fmt: skip
    field_settings = FieldSettings(seed=seed).for_views(max(views.intrinsics.width, views.intrinsics.height))
    with timer("hull"):
        tolerance = field_settings.hull_tolerance if method == "field" else 0.0
        hull, bound, floor = carve_hull_and_bound(views, hull_resolution, tolerance, folder)

    # 4. the surface
    size = max(views.intrinsics.width, views.intrinsics.height)  # the work scales with what the views hold
    bake_views = views  # the views the texture is baked from
    with timer("fit"):
        if method == "hull":
            mesh = hull.to_mesh()
        elif method == "field":
            # small views (the bundled models' 64 px) hold no more than a coarse grid can fit: the stages that
            # would only upsample them are cut (FieldSettings.for_views, above). A first, coarse pass finds each
            # view's drift (FieldSettings.drift_stages); the views are moved by it, the hull and the bound carved
            # again from them, and the field fitted on them
            drift_pass, drift = field_settings.drift_pass(), None
            if drift_pass is not None and (views.weights <= 1).any():
                coarse = fit_field(views, bound, drift_pass, start=hull, device=str(dev), progress=progress)
                drift = coarse.view_alignment
                views = warp_views(views, drift)
                hull, bound, floor = carve_hull_and_bound(views, hull_resolution, tolerance, folder)
                moved = np.hypot(*drift[:, :2].T)
                log.info("drift pass: views moved by up to %.1f px (mean %.1f); the hull carved again from them",
                         moved.max(), moved.mean())  # fmt: skip
            field = fit_field(views, bound, field_settings, start=hull, device=str(dev), progress=progress)
            mesh = extract_mesh(field)
            bake_views = fitted_views(views, field)  # each view's drift and colour undone, as the fit found them
            if field.view_alignment is not None:
                alignment, alignment_note = field.view_alignment, "fitted with the radiance field"
                if drift is not None:  # the two passes' warps, as one
                    alignment = compose(drift, alignment)
                    alignment_note += ", after a drift pass whose moved views carved the hull again"
        else:
            extra = {} if iterations is None else {"iterations": iterations}
            with tempfile.TemporaryDirectory(prefix="svd3d-nerfacto-") as workdir:  # its dataset and run
                mesh = reconstruct_nerfacto(views, device=str(dev), seed=seed, workdir=workdir, **extra)

    # 5. cleanup, decimation, UVs and texture (or vertex colours)
    n_faces = faces_for_views(size) if settings.faces == "auto" else settings.faces
    with timer("cleanup"):
        mesh = decimate(cleanup(mesh, smooth_iterations=SMOOTH_ITERATIONS[method]), n_faces)
    side = None  # the texture's side in pixels
    with timer("texture"):
        if uv:
            side = texture_for_views(size) if settings.texture == "auto" else settings.texture
            mesh = unwrap(mesh, size=side)
            mesh = apply_texture(mesh, bake_texture(mesh, bake_views, side))
        else:
            mesh = bake_vertex_colors(mesh, bake_views)

    # 6. quality numbers: the mesh's silhouettes against the masks, its renders against the views
    with timer("quality"):
        rendered = render_cameras(mesh, views.c2w, views.intrinsics, light=None, supersample=1)
        masks = views.masks > 0.5
        sil = rendered.rgba[..., 3] > 127
        iou = (sil & masks).sum(axis=(1, 2)) / np.maximum((sil | masks).sum(axis=(1, 2)), 1)
        view_psnr = [psnr(rendered.rgba[i, ..., :3] / 255.0, views.images[i]) for i in range(len(views))]
    quality = {
        "silhouette_iou_mean": float(iou.mean()),
        "silhouette_iou_min": float(iou.min()),
        "silhouette_iou_per_view": [round(float(v), 4) for v in iou],
        "view_psnr_mean_db": float(np.mean(view_psnr)),
        "note": "the final mesh rendered unlit at every input camera, against the input masks and images",
    }
    log.info("recon: silhouette IoU %.3f (min %.3f), PSNR %.1f dB", iou.mean(), iou.min(), np.mean(view_psnr))

    # 7. write the files, the preview and recon.json: staged, then moved in beside the views together
    with outputs.adding(out_dir, "recon") as staging:
        with timer("export"):
            staged: list[Path] = []
            for fmt in fmts:
                staged += export_mesh(mesh, staging / f"mesh.{fmt}", height=height)
            files = [out_dir / p.name for p in staged]
            picks = np.unique(np.linspace(0, len(views) - 1, min(len(views), 7)).round().astype(int))
            lit = render_cameras(mesh, views.c2w[picks], views.intrinsics)
            sheet = media.contact_sheet(
                [*(np.asarray(views.images[i] * 255, np.uint8) for i in picks), *lit.rgba],
                [f"view {i:03d}" for i in picks] + [f"mesh {i:03d}" for i in picks],
                columns=len(picks),
            )
            sheet.save(staging / "preview.png", format="PNG")
        report = {
            "written_by": "svd3d recon",
            "job": "recon",
            "command": command_line(),
            "input": str(folder),
            "settings": asdict(settings),
            "views": {
                "count": len(views),
                "size": [views.intrinsics.width, views.intrinsics.height],
                "masks_from": views.mask_source,
            },  # fmt: skip
            "direction_check": {k: v for k, v in direction.items() if k != "c2w"},
            "alignment": _alignment_report(alignment, alignment_note),
            "floor_y": floor,
            "hull": {"resolution": hull_resolution, "volume_m3": hull.volume()},
            "mesh": {
                "faces": int(len(mesh.faces)),
                "vertices": int(len(mesh.vertices)),
                "uv": uv,
                "texture": side,
            },
            "quality": quality,
            "files": [str(f) for f in files],
            "timings_s": dict(timer.seconds),
            "versions": versions(),
        }
        media.write_json(staging / "recon.json", report)
    return ReconResult(mesh, files, report)


def carve_hull_and_bound(views, resolution: int, tolerance: float, folder: Path):
    """The views' visual hull, cut flat below the lowest silhouette rims (no view sees below them: the hull's wedge
    there is a guess, a flat cut a better one; FLOOR_QUANTILE), and the radiance field's bound -> (hull, bound,
    floor height or None).

    The bound: generated views drift by a percent or two, and a hull is an intersection, so every drifted
    silhouette cuts the others' geometry away. The field is bounded by the hull of the silhouettes widened by
    `tolerance` (FieldSettings.hull_tolerance; the trusted input view's stays exact); its mask loss and its per-view
    warps find the surface inside. With tolerance 0 the bound is the hull."""
    hull = carve_visual_hull(views.masks, views.c2w, views.intrinsics, resolution)
    if not hull.occupancy.any():
        raise SVD3DError(f"the views in {folder} share no volume: their cameras do not match the images")
    floor = lowest_rim_height(hull, views.masks, views.c2w, views.intrinsics, quantile=FLOOR_QUANTILE)
    if floor is not None:
        before = int(hull.occupancy.sum())
        hull = cut_below(hull, floor)
        log.info("floor: at y = %.4f (quantile %g of the views' lowest silhouette rims); cut %d hull voxels below it",
                 floor, FLOOR_QUANTILE, before - int(hull.occupancy.sum()))  # fmt: skip
    bound = hull
    if tolerance > 0:
        bound = carve_visual_hull(views.masks, views.c2w, views.intrinsics, resolution, tolerance=tolerance,
                                  hard_views=np.flatnonzero(views.weights > 1))  # fmt: skip
        bound = cut_below(bound, floor) if floor is not None else bound
    return hull, bound, floor


def _alignment_report(alignment: np.ndarray | None, how: str) -> dict | None:
    """recon.json's record of the per-view 2D similarities (svd3d.recon.align's form, full-size pixels)."""
    if alignment is None:
        return None
    return {
        "note": f"per view: the image-plane shift (rows, columns; pixels), log scale and turn (degrees, about the "
        f"image centre) that undid its drift, {how}",
        "shift_px": [[round(float(a), 2) for a in p[:2]] for p in alignment],
        "log_scale": [round(float(p[2]), 4) for p in alignment],
        "angle_deg": [round(float(np.degrees(p[3])), 3) for p in alignment],
    }


def check_recon_options(
    *,
    method: str,
    formats: str | tuple,
    faces: str | int,
    texture: int | str,
    uv: bool,
    height: float | None,
    device: str,
    seed: int,
    hull_resolution: int,
    iterations: int | None,
) -> ReconSettings:
    """Every reconstruction option checked, before any work (also by `svd3d orbit` before it generates views);
    the defaults are `reconstruct`'s."""
    if method not in METHODS:
        raise SVD3DError(f"unknown method {method!r}; use --method field, hull or nerfacto")
    fmts = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    n_faces = check_faces(faces)
    height = check_height(height)
    if uv and texture != "auto":
        side = int(texture) if str(texture).isdigit() else 0  # True, "big", -1: 0, refused below
        if side < 64 or side > 8192 or side & (side - 1):
            raise SVD3DError(f"--texture must be auto or a power of two from 64 to 8192 (e.g. 1024), got {texture}")
        texture = side
    dev = resolve_device(device)
    if iterations is not None and iterations < 1:
        raise SVD3DError(f"--iterations must be at least 1, got {iterations}")
    if method == "nerfacto" and dev.type == "cpu" and iterations is None:
        raise SVD3DError(
            "nerfacto on the CPU takes about 5 s per iteration (its default 5000 would take hours); "
            "pass --iterations (e.g. 300) or use --device cuda, or --method field"
        )
    return ReconSettings(method, fmts, n_faces, texture if uv else 0, height, hull_resolution, seed, str(dev))


def output_names(formats: tuple[str, ...]) -> list[str]:
    """What reconstruct writes into its output folder, relative to it (checked up front: svd3d only replaces
    files it wrote itself)."""
    return [p.name for fmt in formats for p in files_written(Path(f"mesh.{fmt}"))] + ["preview.png", "recon.json"]
