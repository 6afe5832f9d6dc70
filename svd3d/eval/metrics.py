"""Reconstruction metrics with a stated protocol (SyncDreamer-style: PROTOCOL below), and the mean-image baseline.

Meshes: each is centred on its bounding-box centre and scaled so the box's largest side is 1 (``normalise``)
unless they already share a frame (``normalise=False``); surface points are sampled uniformly by area;
Chamfer = mean of the two directional mean L2 distances; F-score at a distance tau; volume IoU of the two solids
on a regular grid over their joint bounds (inside/outside by ray-parity votes); normal consistency = mean |cos|
between each sample's face normal and its nearest sample's face normal on the other mesh, both directions
averaged (1 is perfect; bumps a point metric barely sees lower it). View metrics (PSNR, SSIM, mask IoU) are
svd3d.image_metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svd3d import signals
from svd3d.geometry import import_open3d, raycasting_scene

PROTOCOL = (
    "{frame}; {n} area-uniform surface samples per mesh; Chamfer = mean of both directional mean L2 distances; "
    "F-score at tau={tau}; volume IoU on a {res}^3 grid over the joint bounds (ray-parity votes); normal consistency = "
    "mean |cos| of face normals at nearest samples, both directions averaged"
)
NORMALISED = "each mesh centred and scaled to a unit bounding box (largest side 1)"
SHARED_FRAME = "meshes compared in their shared frame, unscaled"


def normalise(mesh):
    """Copy of mesh centred on its bounding-box centre, largest bounding-box side scaled to 1."""
    out = mesh.copy()
    lo, hi = out.bounds
    out.apply_translation(-(lo + hi) / 2)
    out.apply_scale(1.0 / float(np.max(hi - lo)))
    return out


def sample_surface(mesh, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) points uniformly by area on the mesh surface, seeded."""
    trimesh = signals.import_whole("trimesh")

    points, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points)


def sample_surface_normals(mesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """((n, 3) points, (n, 3) unit face normals) uniformly by area on the mesh surface, seeded: the same points as
    `sample_surface` with the same seed."""
    trimesh = signals.import_whole("trimesh")

    points, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points), np.asarray(mesh.face_normals)[faces]


def normal_consistency(a, b, n: int = 50000, seed: int = 0) -> float:
    """Mean |cos| between each surface sample's normal and its nearest sample's normal on the other mesh,
    a->b and b->a averaged (1.0 perfect; unsigned, so inverted faces are not counted twice)."""
    from scipy.spatial import cKDTree

    (pa, na), (pb, nb) = sample_surface_normals(a, n, seed), sample_surface_normals(b, n, seed + 1)
    ab = np.abs((na * nb[cKDTree(pb).query(pa, workers=-1)[1]]).sum(1)).mean()
    ba = np.abs((nb * na[cKDTree(pa).query(pb, workers=-1)[1]]).sum(1)).mean()
    return float((ab + ba) / 2)


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a, workers=-1)[0]


def chamfer_distance(a, b, n: int = 50000, seed: int = 0) -> float:
    """Mean of the mean nearest-neighbour L2 distance a->b and b->a, on n surface samples each."""
    pa, pb = sample_surface(a, n, seed), sample_surface(b, n, seed + 1)
    return float((_nearest(pa, pb).mean() + _nearest(pb, pa).mean()) / 2)


def f_score(a, b, tau: float = 0.01, n: int = 50000, seed: int = 0) -> tuple[float, float, float]:
    """(F, precision, recall) at distance tau: precision = share of a's samples within tau of b; recall the reverse."""
    pa, pb = sample_surface(a, n, seed), sample_surface(b, n, seed + 1)
    precision = float((_nearest(pa, pb) < tau).mean())
    recall = float((_nearest(pb, pa) < tau).mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f, precision, recall


def occupancy(mesh, points: np.ndarray) -> np.ndarray:
    """(M,) bool: inside the mesh, by majority vote of ray-parity tests (robust to small holes)."""
    o3d = import_open3d()
    scene = raycasting_scene(mesh)
    occ = scene.compute_occupancy(o3d.core.Tensor(points.astype(np.float32)), nsamples=5)
    return occ.numpy() > 0.5


def volume_iou(a, b, resolution: int = 64) -> float:
    """IoU of the solids of a and b sampled at voxel centres of a resolution^3 grid over their joint bounds."""
    lo = np.minimum(a.bounds[0], b.bounds[0])
    hi = np.maximum(a.bounds[1], b.bounds[1])
    axes = [np.linspace(lo[i], hi[i], resolution) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    ia, ib = occupancy(a, grid), occupancy(b, grid)
    union = np.logical_or(ia, ib).sum()
    return float(np.logical_and(ia, ib).sum() / union) if union else 0.0


@dataclass(frozen=True)
class MeshScores:
    chamfer: float
    f_score: float
    precision: float
    recall: float
    volume_iou: float
    tau: float
    protocol: str
    normal_consistency: float = float("nan")  # mean |cos| of normals at nearest samples (1 perfect)


def compare_meshes(
    pred, gt, *, normalise_meshes: bool = True, tau: float = 0.01, n: int = 50000, resolution: int = 64
) -> MeshScores:
    """All mesh metrics of pred against gt under the stated protocol."""
    if normalise_meshes:
        pred, gt = normalise(pred), normalise(gt)
    f, p, r = f_score(pred, gt, tau, n)
    frame = NORMALISED if normalise_meshes else SHARED_FRAME
    protocol = PROTOCOL.format(frame=frame, n=n, tau=tau, res=resolution)
    return MeshScores(
        chamfer_distance(pred, gt, n),
        f,
        p,
        r,
        volume_iou(pred, gt, resolution),
        tau,
        protocol,
        normal_consistency(pred, gt, n),
    )


def mean_scored_frame(frames: np.ndarray, count: int) -> np.ndarray:
    """The mean-image baseline: the per-pixel mean of frames[i, 1:] (uint8, (N, T, H, W, 3)) over the first `count`
    samples, as float32 in [0, 1]; a float64 running sum, so memory-mapped datasets stream."""
    total = np.zeros(frames.shape[2:], np.float64)
    for i in range(count):
        total += np.asarray(frames[i, 1:], np.float64).sum(0) / 255.0
    return (total / (count * (frames.shape[1] - 1))).astype(np.float32)
