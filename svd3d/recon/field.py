"""The default reconstruction: a dense radiance field fitted to the views inside the visual hull, in plain torch.

Representation (DVGO-style, Sun et al. 2022): dense grids over the box of the dilated visual hull, sampled
trilinearly: density = softplus(raw) x density_scale, and sRGB colour = sigmoid(raw) (view-independent: the
outputs are diffuse assets), plus a degree-1 spherical-harmonic term on a much coarser grid that absorbs smooth
view-dependent shading (a light that moves with the camera) without being able to fake parallax, so geometry still
has to explain what moves between views (`sh_voxels`); `color` returns the view-independent part.
Density is zero outside the visual hull dilated by `hull_dilation` voxels: the hull bounds the fit, skips empty
space and keeps floaters out. The density starts at `init_density` inside the hull (the fit carves from there,
and the unseen interior stays solid for extraction).

Fitting, one readable loop (`fit_field`):
  - stages, coarse to fine: each has a grid size, an image size (views are area-downscaled) and a step count;
    between stages the grids are upsampled trilinearly and the optimiser restarts;
  - each step draws rays from the pixels whose rays cross the dilated hull, weighted by the view's weight
    (ViewSet.weights: the input view is trusted most) and boosted on silhouette edges;
  - each ray marches only between its entry into and its exit from the dilated hull (Embree ray casts against
    the hull's mesh), one sample per `step_ratio` voxels, in chunks, and stops once it is opaque; samples outside
    the hull are skipped; only samples that matter read the colour grid; composited on white;
  - loss: photometric MSE + `mask_weight` x MSE(accumulated opacity, mask) + total variation on a random block;
    Adam on the raw grids;
  - generated views drift from view to view (the object shifts, scales and turns by a percent or two): with `warp`
    (the default) each view but the trusted ones (the input view) gets a 2D similarity (shift, scale, turn about
    the image centre) fitted jointly with the grids, inside a hull of silhouettes widened by `hull_tolerance`: each
    pixel's target colour and mask are read bilinearly from its view at the warped position, so the warps get
    gradients from the images, and a small prior keeps views where the others do not pull them. The field is the
    views' consensus; each view moves onto it (`svd3d recon` first runs `drift_pass` stages to move the views and
    carve their hull again: `drift_stages`). (`align`, the
    older lever, registers each view once with the coarse field's render instead; off.) With `appearance`, each
    such view also gets a gain and an offset per channel mapping the field's colour onto the view's, fitted with
    the grids (kept small by `appearance_prior`); `fitted_views` applies warps and colour to the views for the
    texture bake.

Gradients reach the grids without a dense autograd graph: the interpolated raw values at the samples are the
autograd leaves, and their gradients are scattered into persistent grid-gradient buffers by index_add (PyTorch's
3D grid_sample backward is slow on CPU, and a fresh dense gradient per step costs more than the step's maths).
Everything is seeded: same inputs and seed, same field on one device (CUDA index_add uses atomics, so the last
bits can differ between CUDA runs unless torch.use_deterministic_algorithms is on).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from svd3d import signals
from svd3d.cameras import Intrinsics, pixel_rays
from svd3d.errors import SVD3DError
from svd3d.geometry import grid_shape, import_open3d, raycasting_scene
from svd3d.recon.align import align_to_renders, warp_views
from svd3d.recon.hull import HullGrid
from svd3d.recon.views import ViewSet, downscale_views

log = logging.getLogger(__name__)

SH_C1_OVER_C0 = 0.4886025119029199 / 0.28209479177387814  # |Y_1^m| / Y_0^0: SH terms relative to the base colour
CHUNK = 16  # samples per ray marched at a time before opaque rays drop out
STOP_TRANSMITTANCE = 1e-2  # a ray stops marching once less than this much light gets through
SURFACE_FRACTION = 1 / 6  # the extracted surface's density, as a fraction of init_density (best on the bench)
MIN_VOXELS = 16  # the coarsest grid a stage cut to small views gets, cells along the box's longest side
MIN_WEIGHT = 1e-2  # samples with a smaller compositing weight skip the colour grids (the rest stand for them)


@dataclass(frozen=True)
class FieldSettings:
    """How `fit_field` fits a radiance field. Per-stage tuples run coarse to fine and must have equal lengths."""

    voxels: tuple[int, ...] = (64, 96, 128)  # grid cells along the longest side of the dilated hull's box, per stage
    image_sizes: tuple[int, ...] = (96, 144, 192)  # views are area-downscaled to this longer side, per stage
    iterations: tuple[int, ...] = (150, 150, 200)  # optimisation steps per stage
    rays: int = 2048  # rays per step
    step_ratio: float = 0.5  # ray-marching step, in voxels of the current grid
    hull_dilation: int = 2  # hull voxels added around the visual hull, so the true surface lies inside it
    # `svd3d recon` bounds the field by the hull of silhouettes widened by this fraction of the image side (the
    # trusted input view's exact), so a view that drifted cannot cut the object (svd3d.recon.hull, tolerance); 0:
    # the exact hull. It goes with `warp`: the warped views find the surface inside the bound
    hull_tolerance: float = 0.01
    # the density starts solid in the exact hull (`fit_field`'s `start`) and at this fraction of init_density in
    # the tolerant band around it, growing where the views ask for it. Measured (benchmarks/recon_generated.py,
    # mean of 4 meshes): 0 keeps clean views as they were; 1 (solid in the whole bound) cost the clean box 0.033
    # -> 0.047 Chamfer, because the wedge a grazing view leaves beyond a flat face is slow to carve; 0.1 sits between
    band_start: float = 0.0
    init_density: float = 150.0  # initial density inside the visual hull, per world unit (outside: ~0)
    lr_density: float = 0.1  # Adam learning rate of the raw density grid
    lr_color: float = 0.1  # Adam learning rate of the raw colour grid
    lr_decay: float = 0.1  # learning rates fall exponentially to this fraction by the last step
    mask_weight: float = 0.1  # weight of MSE(accumulated opacity, mask) beside the photometric MSE
    tv_density: float = 1e-4  # total-variation weight on the raw density grid
    tv_color: float = 1e-4  # total-variation weight on the raw colour grid
    tv_voxels: int = 65536  # voxels per step that the total-variation terms look at (one random block)
    edge_boost: float = 4.0  # extra sampling weight of pixels on a silhouette edge (1 + edge_boost in all)
    sh_voxels: int = 16  # cells of the coarse view-dependent (degree-1 SH) colour grid along the box; 0: none
    appearance: bool = False  # fit a per-view colour correction (gain and offset per channel; trusted views fixed)
    lr_appearance: float = 0.02  # Adam learning rate of the per-view colour corrections
    appearance_prior: float = 0.005  # weight of their squared size: colours only move where the views disagree
    align: bool = False  # after the first stage, align each view (2D similarity) to the field's render of it
    # fit a 2D similarity per view (trusted views fixed) jointly with the grids, within the tolerant bound: on
    # benchmarks/recon_generated.py's mildly drifted views mean Chamfer 0.0293 -> 0.0253 and normal consistency
    # 0.828 -> 0.860, clean views unchanged (0.0150 -> 0.0152)
    warp: bool = True
    lr_warp: float = 1e-3  # Adam learning rate of the per-view similarities (shift as a fraction of the side, etc.)
    warp_prior: float = 1e-3  # weight of their squared size: views move only as far as the others ask
    # the free views' log scales average zero: scaling them all alike trades with the object's depth (the axis
    # only they see), which no prior on each view's size pins down
    warp_gauge: bool = True
    # nor do their shifts hold a common 3D translation of the object (the pattern a moved object makes in every
    # view): the input view pins the object across its image but not along its depth, and warps that all agree
    # moved the object instead of the views, off the cameras' centre, where held-out views saw it shifted. "depth"
    # (along the trusted view's axis, the one direction it does not pin), "all" (x, y and z) or "none". Measured
    # (benchmarks/recon_generated.py, 4 meshes, 576 px; none -> depth -> all): held-out PSNR clean 28.4 -> 29.0 ->
    # 29.1 dB, mild 24.0 -> 26.3 -> 26.7, strong 21.1 -> 22.7 -> 22.9; Chamfer clean 0.0162 -> 0.0161 -> 0.0165,
    # mild 0.0192 -> 0.0188 -> 0.0194, strong 0.0255 -> 0.0280 -> 0.0263 (the floor under the Duck's drifted views
    # fell 0.02 lower: 0.0102 -> 0.0151 -> 0.0159). Each direction taken out spreads a little of one view's drift
    # over the others (a drifted view's shift is not all its own once its share of a common move is removed):
    # "all" spreads three times as much, and its re-carved hull overshot the clean views' (tests/test_recon_robust)
    translation_gauge: str = "depth"
    # `svd3d recon` fits in two passes: this many of the first stages find each view's drift (the warps), the views
    # are moved by it and the hull and the bound carved again from them, and every stage fits the field to the
    # moved views. The bound carved from drifted silhouettes cuts real geometry that no warp brings back: on the
    # bunny's drifted views (benchmarks/recon_generated.py, mild-drift) Chamfer 0.0230 -> 0.0112 (drift undone
    # perfectly: 0.0095; 1 stage: 0.0142); mean of 4 meshes, mild level 0.0253 -> 0.0196. 0: one pass
    drift_stages: int = 2
    # the drift pass runs this fraction of each of its stages' iterations. Measured at 64 px (benchmarks/
    # recon_generated.py --size 64, 4 meshes): 1/3 saves 3-4 s per recon; clean 0.0204 -> 0.0208 Chamfer, mild
    # 0.0271 -> 0.0260, strong 0.0339 -> 0.0378 (the larger drifts need the steps): kept whole
    drift_iterations: float = 1.0
    seed: int = 0  # RNG seed: same views, hull, settings and seed give the same field (on one device)

    def stages(self) -> list[tuple[int, int, int]]:
        """[(voxels, image_size, iterations), ...] after checking the settings."""
        n = len(self.voxels)
        if n == 0 or len(self.image_sizes) != n or len(self.iterations) != n:
            raise SVD3DError(
                f"voxels, image_sizes and iterations need one entry per stage (equal lengths), got "
                f"{len(self.voxels)}, {len(self.image_sizes)} and {len(self.iterations)}"
            )
        for name, values, low in (("voxels", self.voxels, 4), ("image_sizes", self.image_sizes, 8)):
            if any(int(v) < low for v in values):
                raise SVD3DError(f"every entry of {name} must be at least {low}, got {values}")
        if self.drift_stages < 0:
            raise SVD3DError(f"drift_stages must be >= 0, got {self.drift_stages}")
        if self.translation_gauge not in ("all", "depth", "none"):
            raise SVD3DError(f"translation_gauge must be all, depth or none, got {self.translation_gauge!r}")
        if not 0 < self.drift_iterations <= 1:
            raise SVD3DError(f"drift_iterations must be a fraction above 0, at most 1, got {self.drift_iterations}")
        if not 0 <= self.band_start <= 1:
            raise SVD3DError(f"band_start must be from 0 to 1 (a fraction of init_density), got {self.band_start}")
        if any(int(v) < 0 for v in self.iterations):
            raise SVD3DError(f"iterations must be >= 0, got {self.iterations}")
        if self.rays < 1 or not self.step_ratio > 0 or not self.init_density > 0:
            raise SVD3DError(
                f"rays must be >= 1, step_ratio > 0 and init_density > 0, got {self.rays}, {self.step_ratio} "
                f"and {self.init_density}"
            )
        return [
            (int(v), int(s), int(i)) for v, s, i in zip(self.voxels, self.image_sizes, self.iterations, strict=True)
        ]

    def drift_pass(self) -> FieldSettings | None:
        """The settings of the pass that finds the views' drift (the first `drift_stages` stages), or None when
        there is none (no warps, or drift_stages 0)."""
        k = min(self.drift_stages, len(self.stages()))
        if not self.warp or k == 0:
            return None
        iterations = tuple(max(1, round(n * self.drift_iterations)) for n in self.iterations[:k])
        return replace(self, voxels=self.voxels[:k], image_sizes=self.image_sizes[:k], iterations=iterations)

    def for_views(self, size: int) -> FieldSettings:
        """These settings cut to what views of `size` px (longer side) hold. A stage that would fit the views at
        more pixels than they have only upsamples them: the first such stage becomes the last one, at the views' own
        size with one grid cell per view pixel along the box, and the finer stages are dropped. Views at least as
        large as every stage's size get the settings unchanged.

        Measured on 64 px renders of the bench meshes (benchmarks/recon_generated.py --size 64): the uncut stages
        (up to 128 cells, views upsampled to 192 px) took 2.8x as long for a mean Chamfer of 0.0224 (clean views)
        and 0.0375 (mildly perturbed); cut to 64 cells, 0.0228 and 0.0365; cut to 43 cells (as many cells per
        pixel as the finest stage has), 0.0233 and 0.0388."""
        kept = []
        for voxels, image_size, iterations in self.stages():
            if image_size <= size:
                kept.append((voxels, image_size, iterations))
                continue
            shrunk = max(MIN_VOXELS, int(size), *(v for v, _, _ in kept))
            kept.append((shrunk, int(size), iterations))
            break
        if kept == self.stages():
            return self
        voxels, image_sizes, iterations = (tuple(column) for column in zip(*kept, strict=True))
        return replace(self, voxels=voxels, image_sizes=image_sizes, iterations=iterations)


# ------------------------------------------------------------------------------------------------ grids


def _interpolate(table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(V, C) table, (M, 8) corner indices and trilinear weights -> (M, C)."""
    if table.shape[1] == 1:
        return (table[:, 0].take(index) * weight).sum(1, keepdim=True)
    return torch.bmm(weight.unsqueeze(1), table[index]).squeeze(1)  # (M, 1, 8) @ (M, 8, C)


def _scatter_grad(grad: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, values: torch.Tensor) -> None:
    """The adjoint of `_interpolate`: add (M, C) sample gradients into the (V, C) grid gradient, in place."""
    if grad.shape[1] == 1:
        grad[:, 0].index_add_(0, index.reshape(-1), (weight * values).reshape(-1))
    else:
        grad.index_add_(0, index.reshape(-1), (weight.unsqueeze(-1) * values.unsqueeze(1)).reshape(-1, grad.shape[1]))


def _corners(
    points: torch.Tensor, lo: np.ndarray, size: float, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, 3) world points -> flat corner indices (M, 8) int64 and trilinear weights (M, 8) on the grid with
    vertices at lo + i * size, i < shape (points outside are clamped to it)."""
    origin = torch.as_tensor(lo, dtype=points.dtype, device=points.device)
    top = torch.tensor([n - 1 for n in shape], dtype=points.dtype, device=points.device)
    x = torch.minimum(torch.clamp((points - origin) / size, min=0.0), top)
    i0 = torch.minimum(torch.floor(x), top - 1)
    f = x - i0  # (M, 3)
    i0 = i0.long()
    sx, sy = shape[1] * shape[2], shape[2]
    offsets = torch.tensor([dx * sx + dy * sy + dz for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)], device=x.device)
    index = (i0[:, 0] * sx + i0[:, 1] * sy + i0[:, 2])[:, None] + offsets  # (M, 8)
    wx = torch.stack([1 - f[:, 0], f[:, 0]], 1)
    wy = torch.stack([1 - f[:, 1], f[:, 1]], 1)
    wz = torch.stack([1 - f[:, 2], f[:, 2]], 1)
    weight = (wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]).reshape(-1, 8)
    return index, weight


class RadianceField:
    """Grids over one world box, gated by an occupancy mask (the dilated visual hull) outside which density is 0.

    density_raw: (X, Y, Z) float on vertices lo + i * voxel_size; density = softplus(raw) * density_scale per
                 world unit
    color_raw:   (X, Y, Z, 3) float on the same vertices; sRGB = sigmoid(raw) (plus the view-dependent term)
    sh_raw:      (X', Y', Z', 9) float on a coarser grid (vertices lo + i * sh_voxel_size), or None: degree-1
                 spherical-harmonic coefficients (rgb x xyz) added to the colour logits along the view direction.
                 Coarse on purpose: it absorbs smooth view-dependent shading but cannot paint parallax, so
                 geometry still has to explain what moves between views. `color` leaves it out.
    surface_density: the density at which `svd3d.recon.extract.extract_mesh` puts the surface by default.
    """

    def __init__(
        self,
        lo: np.ndarray,
        voxel_size: float,
        density_raw: torch.Tensor,
        color_raw: torch.Tensor,
        mask: HullGrid,
        density_scale: float,
        surface_density: float,
        sh_raw: torch.Tensor | None = None,
        sh_voxel_size: float = 0.0,
    ):
        self.lo = np.asarray(lo, np.float64)
        self.voxel_size = float(voxel_size)
        self.density_raw = density_raw
        self.color_raw = color_raw
        self.mask = mask
        self.density_scale = float(density_scale)
        self.surface_density = float(surface_density)
        self.sh_raw = sh_raw
        self.sh_voxel_size = float(sh_voxel_size)
        self._mask_cache: dict = {}
        self._mask_mesh = None
        self.view_appearance: np.ndarray | None = None  # (N, 2, 3) per-view log gain and offset found by fit_field
        self.view_alignment: np.ndarray | None = None  # (N, 4) per-view similarity (svd3d.recon.align) it found

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.density_raw.shape)

    @property
    def device(self) -> torch.device:
        return self.density_raw.device

    def bounds(self) -> np.ndarray:
        """(2, 3) float64 world box of the grid."""
        return np.stack([self.lo, self.lo + (np.array(self.shape) - 1) * self.voxel_size])

    def parameters(self) -> list[torch.Tensor]:
        return [self.density_raw, self.color_raw] + ([] if self.sh_raw is None else [self.sh_raw])

    def mask_mesh(self):
        """The mask's surface as a trimesh (cached): rays are clipped to it."""
        if self._mask_mesh is None:
            self._mask_mesh = self.mask.to_mesh()
        return self._mask_mesh

    # -- sampling
    def _mask_tensors(self):
        """The mask padded by one empty voxel per side, flattened, with its corner and voxel size, on device."""
        if self.device not in self._mask_cache:
            occ = np.pad(self.mask.occupancy, 1)
            size = self.mask.voxel_size
            corner = np.array([a[0] for a in self.mask.axes]) - 1.5 * size  # outer corner of padded voxel 0
            self._mask_cache = {
                self.device: (
                    torch.as_tensor(occ.reshape(-1), device=self.device),
                    torch.as_tensor(corner, dtype=torch.float32, device=self.device),
                    torch.as_tensor(size, dtype=torch.float32, device=self.device),
                    torch.as_tensor(np.array(occ.shape) - 1, dtype=torch.float32, device=self.device),
                    occ.shape,
                )
            }
        return self._mask_cache[self.device]

    def inside(self, points: torch.Tensor) -> torch.Tensor:
        """(M, 3) world -> (M,) bool: inside the mask (the dilated hull's voxels)."""
        occ, corner, size, top, shape = self._mask_tensors()
        idx = torch.minimum(torch.clamp(torch.floor((points - corner) / size), min=0), top).long()  # (M, 3)
        return occ.take((idx[:, 0] * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2])

    def _corners(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _corners(points, self.lo, self.voxel_size, self.shape)

    def _sh_corners(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _corners(points, self.lo, self.sh_voxel_size, tuple(self.sh_raw.shape[:3]))

    def _sigma(self, raw: torch.Tensor) -> torch.Tensor:
        return F.softplus(raw) * self.density_scale

    @staticmethod
    def _rgb(raw: torch.Tensor, sh: torch.Tensor | None = None, dirs: torch.Tensor | None = None) -> torch.Tensor:
        """(M, 3) colour logits, (M, 9) SH coefficients and (M, 3) unit view directions (or None) -> (M, 3) sRGB."""
        if sh is None:
            return torch.sigmoid(raw)
        return torch.sigmoid(raw + SH_C1_OVER_C0 * torch.einsum("mcj,mj->mc", sh.reshape(-1, 3, 3), dirs))

    # -- public queries
    @torch.no_grad()
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """(M, 3) world points -> (M,) density (per world unit); zero outside the dilated hull."""
        points = torch.as_tensor(points, dtype=torch.float32, device=self.device)
        table = self.density_raw.reshape(-1, 1)
        out = torch.zeros(len(points), device=self.device)
        for s in range(0, len(points), 1 << 20):
            p = points[s : s + (1 << 20)]
            keep = torch.nonzero(self.inside(p))[:, 0]
            out[s + keep] = self._sigma(_interpolate(table, *self._corners(p[keep]))[:, 0])
        return out

    @torch.no_grad()
    def color(self, points: torch.Tensor) -> torch.Tensor:
        """(M, 3) world points -> (M, 3) view-independent sRGB colour in [0, 1]."""
        points = torch.as_tensor(points, dtype=torch.float32, device=self.device)
        table = self.color_raw.reshape(-1, 3)
        out = [_interpolate(table, *self._corners(points[s : s + (1 << 20)])) for s in range(0, len(points), 1 << 20)]
        return torch.sigmoid(torch.cat(out)) if out else torch.zeros(0, 3, device=self.device)

    @torch.no_grad()
    def render(self, c2w: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """One view: rgb (H, W, 3) float32 composited on white and alpha (H, W) float32 accumulated opacity."""
        h, w = intrinsics.height, intrinsics.width
        origins, dirs = pixel_rays(np.asarray(c2w, np.float64)[None], intrinsics)
        rgb = np.ones((h * w, 3), np.float32)
        alpha = np.zeros(h * w, np.float32)
        near, far, hit = _hull_segments(self.mask_mesh(), origins, dirs, 1.5 * float(self.mask.voxel_size.max()))
        rays = np.flatnonzero(hit)
        for s in range(0, len(rays), 16384):
            r = rays[s : s + 16384]
            batch = _RayBatch(*(torch.as_tensor(a[r], device=self.device) for a in (origins, dirs, near, far)))
            out = _render_batch(self, batch, 0.5 * self.voxel_size)
            rgb[r] = out.rgb.cpu().numpy()
            alpha[r] = out.acc.cpu().numpy()
        return rgb.reshape(h, w, 3), alpha.reshape(h, w)

    def upsampled(self, voxels: int) -> RadianceField:
        """The same field with `voxels` density and colour cells along the box's longest side (trilinear); the
        coarse view-dependent grid is kept as it is."""
        lo, hi = self.bounds()
        shape, size = grid_shape(lo, hi, voxels)
        axes = [torch.arange(n, dtype=torch.float32, device=self.device) * size for n in shape]
        points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        points = points + torch.as_tensor(self.lo, dtype=torch.float32, device=self.device)
        density, color = [], []
        for s in range(0, len(points), 1 << 20):
            index, weight = self._corners(points[s : s + (1 << 20)])
            density.append(_interpolate(self.density_raw.reshape(-1, 1), index, weight)[:, 0])
            color.append(_interpolate(self.color_raw.reshape(-1, 3), index, weight))
        field = RadianceField(
            self.lo,
            size,
            torch.cat(density).reshape(shape),
            torch.cat(color).reshape(*shape, 3),
            self.mask,
            self.density_scale,
            self.surface_density,
            None if self.sh_raw is None else self.sh_raw.detach().clone(),
            self.sh_voxel_size,
        )
        field._mask_mesh = self._mask_mesh
        return field


# ------------------------------------------------------------------------------------------------ rays


def _hull_segments(mesh, origins: np.ndarray, dirs: np.ndarray, margin: float):
    """Per ray: where it enters the mesh and where it last leaves it (distances, widened by margin), and
    whether it hits at all. Embree (open3d) casts the rays forwards, then backwards from beyond the mesh."""
    o3d = import_open3d()
    scene = raycasting_scene(mesh)
    centre = mesh.bounds.mean(axis=0)
    reach = float(np.linalg.norm(mesh.extents)) + float(np.linalg.norm(origins - centre, axis=1).max())
    near = scene.cast_rays(o3d.core.Tensor(np.concatenate([origins, dirs], 1)))["t_hit"].numpy()
    back_origins = (origins + dirs * reach).astype(np.float32)
    back = scene.cast_rays(o3d.core.Tensor(np.concatenate([back_origins, -dirs], 1)))["t_hit"].numpy()
    hit = np.isfinite(near) & np.isfinite(back)
    far = np.where(hit, reach - back, 0.0)
    near = np.where(hit, near, 0.0)
    return np.maximum(near - margin, 0.0).astype(np.float32), (far + margin).astype(np.float32), hit


@dataclass
class _RayBatch:
    origins: torch.Tensor  # (B, 3)
    dirs: torch.Tensor  # (B, 3) unit
    near: torch.Tensor  # (B,) where marching starts
    far: torch.Tensor  # (B,) where it ends


@dataclass
class _Chunk:
    """Samples k .. k + CHUNK - 1 of the rays still marching; only those inside the dilated hull are kept."""

    rays: torch.Tensor  # (A,) ray indices
    where: torch.Tensor  # (S,) flat indices into the (A, CHUNK) samples that lie inside the dilated hull
    points: torch.Tensor  # (S, 3) those samples
    index: torch.Tensor  # (S, 8) grid corners of those samples
    weight: torch.Tensor  # (S, 8) their trilinear weights
    raw: torch.Tensor  # (S,) their raw density


def _march(field: RadianceField, rays: _RayBatch, step: float, offset: torch.Tensor) -> list[_Chunk]:
    """Which samples each ray reaches before less than STOP_TRANSMITTANCE of its light gets through (no grad).

    Ray r samples near + (k + offset_r) * step for k < ceil((far - near) / step), CHUNK samples at a time.
    """
    device = rays.near.device
    counts = torch.clamp(torch.ceil((rays.far - rays.near) / step), min=1).long()  # (B,)
    trans = torch.ones(len(counts), device=device)
    active = torch.arange(len(counts), device=device)
    ks = torch.arange(CHUNK, device=device)
    table = field.density_raw.reshape(-1, 1)
    chunks = []
    with torch.no_grad():
        for first in range(0, int(counts.max()) if len(counts) else 0, CHUNK):
            a = active
            k = first + ks  # (K,)
            t = rays.near[a, None] + (k[None, :] + offset[a, None]) * step  # (A, K)
            points = (rays.origins[a, None] + t[..., None] * rays.dirs[a, None]).reshape(-1, 3)  # (A*K, 3)
            valid = (k[None, :] < counts[a, None]).reshape(-1) & field.inside(points)
            where = torch.nonzero(valid)[:, 0]
            index, weight = field._corners(points[where])
            raw = _interpolate(table, index, weight)[:, 0]
            chunks.append(_Chunk(a, where, points[where], index, weight, raw))
            tau = torch.zeros(len(a) * CHUNK, device=device).index_put_((where,), field._sigma(raw) * step)
            trans[a] *= torch.exp(-tau.reshape(len(a), CHUNK).sum(1))
            active = a[(trans[a] > STOP_TRANSMITTANCE) & (first + CHUNK < counts[a])]
            if len(active) == 0:
                break
    return chunks


@dataclass
class _Rendered:
    rgb: torch.Tensor  # (B, 3) composited on white
    acc: torch.Tensor  # (B,) accumulated opacity
    leaves: list  # with train: [(grid, corner index, corner weight, raw values at the samples)], autograd leaves


def _render_batch(
    field: RadianceField, rays: _RayBatch, step: float, jitter: torch.Tensor | None = None, *, train=False
) -> _Rendered:
    """March and composite B rays on white. With train, the raw grid values at the samples are autograd leaves
    whose gradients the caller scatters into the grids."""
    b = len(rays.near)
    device = rays.near.device
    offset = torch.full_like(rays.near, 0.5) if jitter is None else jitter
    chunks = _march(field, rays, step, offset)
    raw = torch.cat([c.raw for c in chunks]) if chunks else torch.zeros(0, device=device)
    if train:
        raw.requires_grad_(True)
    sigmas = field._sigma(raw).split([len(c.where) for c in chunks])
    trans = torch.ones(b, device=device)  # transmittance before the next chunk
    ray_ids, weights = [], []
    for c, sigma in zip(chunks, sigmas, strict=True):
        n = len(c.rays)
        tau = torch.zeros(n * CHUNK, device=device).index_put((c.where,), sigma * step).reshape(n, CHUNK)
        optical = torch.cumsum(tau, 1)  # (A, K) optical depth after each sample, from the chunk's start
        before = trans[c.rays, None] * torch.exp(tau - optical)  # transmittance before each sample
        w = before * -torch.expm1(-tau)  # (A, K)
        weights.append(w.reshape(-1)[c.where])
        ray_ids.append(c.rays[c.where // CHUNK])
        trans = trans.index_put((c.rays,), trans[c.rays] * torch.exp(-optical[:, -1]))
    ray_id = torch.cat(ray_ids) if chunks else torch.zeros(0, dtype=torch.long, device=device)
    w = torch.cat(weights) if chunks else torch.zeros(0, device=device)
    # the samples that read the colour grids: weight above MIN_WEIGHT, or the ray's heaviest where none is
    heaviest = torch.zeros(b, device=device).scatter_reduce(0, ray_id, w.detach(), "amax")
    sel = torch.nonzero(w.detach() >= torch.clamp(heaviest[ray_id], max=MIN_WEIGHT))[:, 0]
    ray_sel, w_sel = ray_id[sel], w[sel]
    index = torch.cat([c.index for c in chunks])[sel] if chunks else torch.zeros(0, 8, dtype=torch.long, device=device)
    weight = torch.cat([c.weight for c in chunks])[sel] if chunks else torch.zeros(0, 8, device=device)
    color_raw = _interpolate(field.color_raw.reshape(-1, 3), index, weight)  # (S, 3)
    leaves = []
    if train:
        color_raw.requires_grad_(True)
        all_index = torch.cat([c.index for c in chunks])
        all_weight = torch.cat([c.weight for c in chunks])
        leaves = [(field.density_raw, all_index, all_weight, raw), (field.color_raw, index, weight, color_raw)]
    sh = None
    if field.sh_raw is not None:
        points = torch.cat([c.points for c in chunks])[sel] if chunks else torch.zeros(0, 3, device=device)
        sh_index, sh_weight = field._sh_corners(points)
        sh = _interpolate(field.sh_raw.reshape(-1, 9), sh_index, sh_weight)  # (S, 9)
        if train:
            sh.requires_grad_(True)
            leaves.append((field.sh_raw, sh_index, sh_weight, sh))
    color = field._rgb(color_raw, sh, rays.dirs[ray_sel])  # (S, 3)
    acc = 1 - trans
    # the selected samples stand for all of the ray's opacity: their colours are scaled up to acc
    kept = torch.zeros(b, device=device).index_add(0, ray_sel, w_sel)
    rgb = torch.zeros(b, 3, device=device).index_add(0, ray_sel, w_sel[:, None] * color)
    rgb = rgb * (acc / torch.clamp(kept, min=1e-6))[:, None]
    return _Rendered(rgb + (1 - acc[:, None]), acc, leaves)


# ------------------------------------------------------------------------------------------------ fitting


@dataclass
class _TrainRays:
    """Every pixel of the training views whose ray crosses the dilated hull, at one image size."""

    origins: torch.Tensor  # (P, 3)
    dirs: torch.Tensor  # (P, 3)
    near: torch.Tensor  # (P,)
    far: torch.Tensor  # (P,)
    rgb: torch.Tensor  # (P, 3) on white
    mask: torch.Tensor  # (P,)
    prob: torch.Tensor  # (P,) sampling weight: view weight x (1 + edge_boost on silhouette edges)
    view: torch.Tensor  # (P,) int64 index of the pixel's view
    pixel: torch.Tensor  # (P, 2) the pixel's (row, column) in its view at this stage's size
    stack: torch.Tensor  # (N, h, w, 4) every view at this size: 1 - rgb (0 on white) and the mask, for warped reads


def _warped_targets(rays: _TrainRays, pick: torch.Tensor, warp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The picked pixels' colours (B, 3) on white and masks (B,) read from their views at the pixel moved by the
    view's similarity (N, 4: shift_row, shift_col as fractions of the side, log scale, angle in radians), the
    mapping `svd3d.recon.align.similarity_matrix` writes: a view warped by it shows, at pixel x, what it showed at
    centre + R(-angle) / scale (x - centre - shift). Bilinear, so the similarities get gradients from the images."""
    n, h, w, _ = rays.stack.shape
    size = torch.tensor([h, w], dtype=torch.float32, device=pick.device)
    centre = (size - 1) / 2
    p = warp[rays.view[pick]]  # (B, 4)
    x = rays.pixel[pick] - centre - p[:, :2] * size  # (B, 2) rows, columns
    cos, sin, inv = torch.cos(p[:, 3]), torch.sin(p[:, 3]), torch.exp(-p[:, 2])
    row = (cos * x[:, 0] + sin * x[:, 1]) * inv + centre[0]
    col = (-sin * x[:, 0] + cos * x[:, 1]) * inv + centre[1]
    # bilinear read of the four neighbours (zero, i.e. white and empty, outside the image), one gather for all views
    r0, c0 = torch.floor(row), torch.floor(col)
    fr, fc = (row - r0)[:, None], (col - c0)[:, None]
    flat = rays.stack.reshape(-1, 4)  # (N*h*w, 4)
    base = rays.view[pick] * (h * w)
    out = 0
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = (r0 + dr).long(), (c0 + dc).long()
        inside = ((r >= 0) & (r < h) & (c >= 0) & (c < w))[:, None]
        index = base + r.clamp(0, h - 1) * w + c.clamp(0, w - 1)
        out = out + weight * flat[index] * inside
    return 1 - out[:, :3], out[:, 3]


def _edges(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) coverage -> (N, H, W) bool: pixels within one pixel of the silhouette's edge."""
    from scipy.ndimage import binary_dilation, binary_erosion

    inside = masks > 0.5
    structure = np.ones((1, 3, 3), bool)
    return binary_dilation(inside, structure) & ~binary_erosion(inside, structure) | ((masks > 0.02) & (masks < 0.98))


def _train_rays(views: ViewSet, size: int, mask_mesh, margin: float, edge_boost: float, device) -> _TrainRays:
    images, masks, intr = downscale_views(views.masks, views.intrinsics, size, views.images)
    origins, dirs = pixel_rays(views.c2w, intr)
    near, far, hit = _hull_segments(mask_mesh, origins, dirs, margin)
    view_weight = np.repeat(np.asarray(views.weights, np.float64), intr.width * intr.height)
    prob = view_weight * (1.0 + edge_boost * _edges(masks).reshape(-1))
    keep = np.flatnonzero(hit)
    arrays = (origins, dirs, near, far, images.reshape(-1, 3), masks.reshape(-1), prob)
    h, w = intr.height, intr.width
    view = torch.as_tensor(keep // (w * h), device=device)
    pixel = torch.as_tensor(np.stack([(keep % (w * h)) // w, keep % w], 1), dtype=torch.float32, device=device)
    stack = torch.as_tensor(np.concatenate([1 - images, masks[..., None]], -1), dtype=torch.float32, device=device)
    tensors = (torch.as_tensor(np.ascontiguousarray(a[keep]), device=device).float() for a in arrays)
    return _TrainRays(*tensors, view, pixel, stack)


def _inverse_softplus(y: float) -> float:
    return float(y + math.log(-math.expm1(-y)))


def initial_field(
    hull: HullGrid, mask: HullGrid, voxels: int, settings: FieldSettings, device, start: HullGrid | None = None
) -> RadianceField:
    """Grids over the dilated bound's (`mask`'s) box: density `init_density` inside `hull` (or inside `start`, with
    `settings.band_start` of it in the rest of `hull`), ~0 outside; grey."""
    from scipy.ndimage import map_coordinates

    lo, hi = mask.bounds()
    shape, size = grid_shape(lo, hi, voxels)

    def occupancy(grid: HullGrid) -> np.ndarray:
        """grid's occupancy (1 inside) at the field's vertices, trilinear over its voxel centres"""
        coords = [
            np.clip(
                (lo[i] + np.arange(shape[i]) * size - grid.axes[i][0]) / grid.voxel_size[i], 0, len(grid.axes[i]) - 1
            )
            for i in range(3)
        ]
        points = np.stack(np.meshgrid(*coords, indexing="ij"), 0).reshape(3, -1)
        return map_coordinates(grid.occupancy.astype(np.float32), points, order=1, mode="nearest").reshape(shape)

    inside = occupancy(hull)
    scale = 1.0 / size  # raw ~ 0 is about one optical depth per coarse voxel: Adam steps move it fast enough
    empty, full = _inverse_softplus(1e-2 / scale), _inverse_softplus(settings.init_density / scale)
    raw = empty + inside * (full - empty)
    if start is not None:  # the band (in hull, not in start) starts at band_start of the density instead
        if not all(np.array_equal(a, b) for a, b in zip(start.axes, hull.axes, strict=True)):
            raise SVD3DError("the field's start must be carved on the same voxels as its bound")
        band = _inverse_softplus(max(settings.band_start * settings.init_density, 1e-2) / scale)
        raw -= (inside - np.minimum(occupancy(start), inside)) * (full - band)
    density = torch.as_tensor(raw, dtype=torch.float32, device=device)
    color = torch.zeros(*shape, 3, device=device)
    sh, sh_size = None, 0.0
    if settings.sh_voxels > 0:
        sh_shape, sh_size = grid_shape(lo, hi, settings.sh_voxels)
        sh = torch.zeros(*sh_shape, 9, device=device)
    surface = settings.init_density * SURFACE_FRACTION
    return RadianceField(lo, size, density, color, mask, scale, surface, sh, sh_size)


@torch.no_grad()
def _add_tv_grad(param: torch.Tensor, start: tuple[int, int, int], size: tuple[int, int, int], weight: float) -> None:
    """Add the gradient of weight x the mean squared difference between neighbouring vertices inside the block
    param[start : start + size] to param.grad: total variation on one random block per step (contiguous
    memory: far cheaper than scattered voxels), unbiased for the whole grid's mean over many steps."""
    block = tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))
    values, grad = param[block], param.grad[block]
    channels = param.shape[3] if param.dim() == 4 else 1
    scale = 2.0 * weight / (size[0] * size[1] * size[2] * channels)
    for axis in range(3):
        n = size[axis]
        head = (slice(None),) * axis + (slice(1, n),)
        tail = (slice(None),) * axis + (slice(0, n - 1),)
        diff = (values[head] - values[tail]) * scale
        grad[head] += diff
        grad[tail] -= diff


def fit_field(
    views: ViewSet,
    hull: HullGrid,
    settings: FieldSettings = FieldSettings(),
    *,
    start: HullGrid | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> RadianceField:
    """Fit a radiance field to posed views inside their visual hull, coarse to fine (see the module docstring).
    `start`: where the density starts solid when that is not all of `hull` (the exact hull inside a tolerant
    bound; the band between starts at `settings.band_start`)."""
    from scipy.ndimage import binary_dilation
    from tqdm.auto import tqdm

    # 1. check inputs
    stages = settings.stages()
    if not hull.occupancy.any():
        raise SVD3DError("the visual hull is empty: the silhouettes share no volume (check the cameras)")
    device = torch.device(device)
    started = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    # 2. the dilated hull bounds the grids, gates the density and clips every ray
    dilated = binary_dilation(hull.occupancy, np.ones((3, 3, 3), bool), iterations=max(settings.hull_dilation, 0))
    mask = HullGrid(dilated | hull.occupancy, hull.axes)
    field = initial_field(hull, mask, stages[0][0], settings, device, start)
    margin = 1.5 * float(mask.voxel_size.max())
    # per-view colour correction (log gain, offset per channel), so a generated view's colour drift is not
    # painted into the field or explained by bumps; the trusted views (weight > 1, the input view) anchor colour
    appearance = torch.zeros(len(views), 2, 3, device=device, requires_grad=settings.appearance)
    free = torch.as_tensor(np.asarray(views.weights) <= 1, device=device)[:, None, None].float()
    # per-view similarity (shift_row, shift_col as fractions of the side, log scale, angle), fitted with the grids:
    # generated views drift by a percent or two, and unmoved, every drifted view pulls the surface its own way
    warp = torch.zeros(len(views), 4, device=device, requires_grad=settings.warp)
    gauge = WarpGauge(free[:, 0, 0], gauge_translations(views, settings.translation_gauge), settings.warp_gauge)
    total, done = sum(s[2] for s in stages), 0
    bar = tqdm(total=total, desc="radiance field", unit="step", disable=not progress, leave=False)
    original, alignment = views, None
    for stage, (voxels, size, iterations) in enumerate(stages):
        # 3. this stage's grid, rays and optimiser (after the first stage: views aligned to the coarse field)
        if stage == 1 and settings.align:
            alignment = _alignment(field, original, stages[0][1])
            views = warp_views(original, alignment)
        if stage > 0:
            field = field.upsampled(voxels)
        if iterations == 0:
            continue
        rays = _train_rays(views, size, field.mask_mesh(), margin, settings.edge_boost, device)
        if len(rays.near) == 0:
            raise SVD3DError("no pixel of any view sees the visual hull: the cameras do not match the hull")
        step = settings.step_ratio * field.voxel_size
        for t in field.parameters():
            t.grad = torch.zeros_like(t)  # persistent: gradients are scattered into it every step
        groups = [
            {"params": [field.density_raw], "lr": settings.lr_density},
            {"params": field.parameters()[1:], "lr": settings.lr_color},
        ]
        if settings.appearance:
            groups.append({"params": [appearance], "lr": settings.lr_appearance})
        if settings.warp:
            groups.append({"params": [warp], "lr": settings.lr_warp})
        optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15, **_fused(device))
        shape = field.shape
        edge = max(2, round(settings.tv_voxels ** (1 / 3)))
        block = tuple(min(edge, n) for n in shape)  # the total-variation block
        log.info(
            "field stage %d: grid %s (voxel %.4f), views at %d px, %d rays cross the hull, %d steps",
            *(stage, shape, field.voxel_size, size, len(rays.near), iterations),
        )
        stage_started = time.perf_counter()
        for _ in range(iterations):
            # 4. one step: rays weighted by view trust and silhouette edges, composited on white
            signals.check()  # a Ctrl-C that a library swallowed stops the fit here
            decay = settings.lr_decay ** (done / max(total - 1, 1))
            bases = [settings.lr_density, settings.lr_color]
            bases += [settings.lr_appearance] * settings.appearance + [settings.lr_warp] * settings.warp
            for group, base in zip(optimizer.param_groups, bases, strict=True):
                group["lr"] = base * decay
            pick = torch.multinomial(rays.prob, settings.rays, replacement=True, generator=generator)
            jitter = torch.rand(settings.rays, generator=generator, device=device)
            batch = _RayBatch(rays.origins[pick], rays.dirs[pick], rays.near[pick], rays.far[pick])
            out = _render_batch(field, batch, step, jitter, train=True)
            rgb = out.rgb
            if settings.appearance:  # the view's colour correction, on the object only (the background stays white)
                corr = appearance[rays.view[pick]] * free[rays.view[pick]]  # (B, 2, 3)
                acc = out.acc[:, None]
                rgb = (rgb - (1 - acc)) * torch.exp(corr[:, 0]) + acc * corr[:, 1] + (1 - acc)
            target_rgb, target_mask = rays.rgb[pick], rays.mask[pick]
            if settings.warp:
                moved = gauge(warp)
                target_rgb, target_mask = _warped_targets(rays, pick, moved)
            loss = F.mse_loss(rgb, target_rgb) + settings.mask_weight * F.mse_loss(out.acc, target_mask)
            if settings.appearance:
                loss = loss + settings.appearance_prior * (appearance * free).square().sum((1, 2)).mean()
            if settings.warp:
                loss = loss + settings.warp_prior * moved.square().sum(1).mean()
            # 5. gradients: autograd to the samples, then scattered into the grids; total variation; Adam
            for t in field.parameters():
                t.grad.zero_()
            appearance.grad = warp.grad = None
            loss.backward()
            for grid, index, weight, leaf in out.leaves:
                if leaf.grad is not None:
                    channels = 1 if grid.dim() == 3 else grid.shape[-1]
                    _scatter_grad(grid.grad.view(-1, channels), index, weight, leaf.grad.view(-1, channels))
            corner = torch.randint(0, 1 << 30, (3,), generator=generator, device=device).tolist()
            corner = [c % (n - m + 1) for c, n, m in zip(corner, shape, block, strict=True)]
            _add_tv_grad(field.density_raw, corner, block, settings.tv_density)
            _add_tv_grad(field.color_raw, corner, block, settings.tv_color)
            optimizer.step()
            done += 1
            bar.update(1)
        log.info("field stage %d: %d steps in %.1f s", stage, iterations, time.perf_counter() - stage_started)
    bar.close()
    for t in field.parameters():
        t.grad = None
    field.view_appearance = (appearance.detach() * free).cpu().numpy()
    field.view_alignment = alignment
    if settings.warp:
        field.view_alignment = _full_size(gauge(warp.detach()), views.intrinsics)
        moved = np.hypot(*field.view_alignment[:, :2].T)
        log.info(
            "per-view warps: moved by up to %.1f px (mean %.1f), scaled by up to %.1f%%, turned by up to %.2f deg",
            moved.max(), moved.mean(), 100 * np.abs(np.expm1(field.view_alignment[:, 2])).max(),
            np.degrees(np.abs(field.view_alignment[:, 3])).max(),
        )  # fmt: skip
    log.info("fitted the radiance field in %.1f s", time.perf_counter() - started)
    return field


def _alignment(field: RadianceField, views: ViewSet, size: int) -> np.ndarray:
    """(N, 4) similarities in full-size pixels that register each view with the field's render of it (at `size`):
    the coarse field is the views' consensus, so a view that drifted from the others is moved back."""
    images, masks, intr = downscale_views(views.masks, views.intrinsics, size, views.images)
    renders = [field.render(c2w, intr) for c2w in views.c2w]
    rgb, alpha = np.stack([r[0] for r in renders]), np.stack([r[1] for r in renders])
    params = align_to_renders(images, masks, rgb, alpha, np.asarray(views.weights) > 1)
    params[:, 0] *= views.intrinsics.height / intr.height  # to full-size pixels
    params[:, 1] *= views.intrinsics.width / intr.width
    moved = np.hypot(params[:, 0], params[:, 1])
    log.info(
        "aligned the views to the coarse field: moved by up to %.1f px (mean %.1f), scaled by up to %.1f%%, "
        "turned by up to %.2f deg", moved.max(), moved.mean(), 100 * np.abs(np.expm1(params[:, 2])).max(),
        np.degrees(np.abs(params[:, 3])).max(),
    )  # fmt: skip
    return params


def translation_patterns(views: ViewSet) -> np.ndarray:
    """(N, 2, 3): how a small 3D translation t of the object (about the origin) shifts each view's image, as
    (row, column) fractions of the side per unit of t: pattern[i] @ t. A pinhole at the origin's depth d sees
    t's camera-space x and y as fl_x * x / d columns and -fl_y * y / d rows."""
    rot, centre = views.c2w[:, :3, :3], views.c2w[:, :3, 3]
    depth = np.einsum("ni,ni->n", rot[:, :, 2], centre)  # the origin's depth (OpenGL cameras look down -z)
    intr = views.intrinsics
    rows = -intr.fl_y / (depth * intr.height)[:, None] * rot[:, :, 1]
    columns = intr.fl_x / (depth * intr.width)[:, None] * rot[:, :, 0]
    return np.stack([rows, columns], 1)


def gauge_translations(views: ViewSet, which: str) -> np.ndarray | None:
    """(N, 2, K) shift patterns of the K translations the warps' gauge takes out (FieldSettings.translation_gauge),
    or None."""
    if which == "none":
        return None
    patterns = translation_patterns(views)
    trusted = np.flatnonzero(np.asarray(views.weights) > 1)
    if which == "depth" and len(trusted):
        return patterns @ views.c2w[trusted[0], :3, 2][:, None]  # along the trusted view's axis
    return patterns


class WarpGauge:
    """Raw per-view similarities -> the warps applied: none on trusted views; with `scale`, the free views' log
    scales shifted to average zero; with `patterns` (translation_patterns), the free views' shifts less their
    least-squares common translation. Each removes what moves or scales the object rather than the views, so
    the loss does not depend on it and the object stays where the cameras put it."""

    def __init__(self, free: torch.Tensor, patterns: np.ndarray | None, scale: bool):
        self.free, self.scale = free, scale
        self.project = None  # (2N, 2N): the shifts' projection off the translations' span
        if patterns is not None and int(free.sum()) >= 2:
            span = (patterns * free.cpu().numpy()[:, None, None]).reshape(-1, patterns.shape[2])  # trusted: no rows
            project = np.eye(len(span)) - span @ np.linalg.pinv(span)
            self.project = torch.as_tensor(project, dtype=torch.float32, device=free.device)

    def __call__(self, warp: torch.Tensor) -> torch.Tensor:
        moved = warp * self.free[:, None]
        if self.scale:
            mean_scale = moved[:, 2].sum() / self.free.sum().clamp(min=1)
            moved = moved - (mean_scale * self.free)[:, None] * torch.tensor([0.0, 0.0, 1.0, 0.0], device=warp.device)
        if self.project is not None:
            shifts = (self.project @ moved[:, :2].reshape(-1)).reshape(-1, 2)
            moved = torch.cat([shifts, moved[:, 2:]], 1)
        return moved


def _full_size(warp: torch.Tensor, intrinsics: Intrinsics) -> np.ndarray:
    """(N, 4) similarities with shifts as fractions of the side -> shifts in full-size pixels (align.py's form)."""
    params = warp.cpu().numpy().astype(np.float64)
    params[:, 0] *= intrinsics.height
    params[:, 1] *= intrinsics.width
    return params


def fitted_views(views: ViewSet, field: RadianceField) -> ViewSet:
    """The views as `fit_field` came to see them: aligned (`view_alignment`) and colour-corrected
    (`correct_appearance`), so a texture bake blends views that agree."""
    if field.view_alignment is not None:
        views = warp_views(views, field.view_alignment)
    return correct_appearance(views, field)


def correct_appearance(views: ViewSet, field: RadianceField) -> ViewSet:
    """The views with the colour correction `fit_field` found for each undone (each view's object colours mapped
    onto the field's, background left white), so a texture bake blends colours that agree. Views unchanged when
    the field has none."""
    corr = field.view_appearance
    if corr is None or not np.any(corr):
        return views
    alpha = views.masks[..., None]  # (N, H, W, 1)
    gain, offset = np.exp(corr[:, 0])[:, None, None], corr[:, 1][:, None, None]  # (N, 1, 1, 3)
    obj = views.images - (1 - alpha)  # alpha x the view's colour, which the fit found as field x gain + offset
    images = (obj - alpha * offset) / gain + (1 - alpha)
    return replace(views, images=np.clip(images, 0, 1).astype(np.float32))


def _fused(device: torch.device) -> dict:
    """Adam's fused kernel where PyTorch has one (CPU and CUDA): one pass over the grids per step."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}
