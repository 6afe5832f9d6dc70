"""Reading a nerfstudio-format folder (orbit outputs and render outputs alike) into one typed set of views.

Masks come from the alpha channel when the images have one, otherwise from the white background (svd3d's orbit
views are composited on white). Every check happens here, so the stages after it trust their input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from svd3d.cameras import CameraFrame, Intrinsics, angles_from_c2w, read_transforms
from svd3d.errors import SVD3DError
from svd3d.image import mask_from_white

INPUT_VIEW_WEIGHT = 4.0  # how much more the input view (frame 0 of an orbit) is trusted than a generated one
OBJECT_HALF_SIZE = 0.5  # svd3d's world: the object inside [-0.5, 0.5]^3; a camera centre in there cannot see it


@dataclass
class ViewSet:
    """N posed views of one object, in svd3d's camera convention.

    images:     (N, H, W, 3) float32 sRGB in [0, 1], composited on white
    masks:      (N, H, W) float32 in [0, 1], object coverage
    c2w:        (N, 4, 4) float64 OpenGL camera-to-world
    intrinsics: shared pinhole intrinsics
    weights:    (N,) float32 per-view trust for losses and texture baking (the input view highest)
    names:      file paths as transforms.json lists them
    """

    images: np.ndarray
    masks: np.ndarray
    c2w: np.ndarray
    intrinsics: Intrinsics
    weights: np.ndarray
    names: list[str] = field(default_factory=list)
    mask_source: str = "alpha"  # "alpha" or "white background"

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> ViewSet:
        index = np.asarray(index)
        return ViewSet(
            self.images[index],
            self.masks[index],
            self.c2w[index],
            self.intrinsics,
            self.weights[index],
            [self.names[i] for i in np.atleast_1d(index)],
            self.mask_source,
        )

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        """(elevations, azimuths) in degrees of cameras that look at the origin."""
        elev, azim, _ = angles_from_c2w(self.c2w)
        return elev, azim


def downscale_views(
    masks: np.ndarray, intrinsics: Intrinsics, size: int, images: np.ndarray | None = None, *, whole_factor=False
) -> tuple[np.ndarray | None, np.ndarray, Intrinsics]:
    """Downscale (N, H, W) masks, and (N, H, W, 3) images when given, so that the longer side is about `size`
    pixels (never upscaling), with the intrinsics to match: (images or None, masks, intrinsics). Unchanged when
    they are small enough already.

    whole_factor=False (the radiance field's stages): area resampling to exactly round(side x size / longer side)
    pixels (torch's "area" mode), focal lengths and principal point scaled by new / old size per axis.
    whole_factor=True (the direction check's masks): f x f blocks averaged, f = longer side // size, the last
    H % f rows and W % f columns dropped; focal lengths and principal point divided by f (pixel-centre aligned).
    """
    if whole_factor:
        f = max(1, max(intrinsics.width, intrinsics.height) // size)
        if f == 1:
            return images, masks, intrinsics
        n, h, w = masks.shape
        h2, w2 = h // f, w // f
        small = masks[:, : h2 * f, : w2 * f].reshape(n, h2, f, w2, f).mean(axis=(2, 4))
        if images is not None:
            images = images[:, : h2 * f, : w2 * f].reshape(n, h2, f, w2, f, -1).mean(axis=(2, 4))
        intr = Intrinsics(w2, h2, intrinsics.fl_x / f, intrinsics.fl_y / f, intrinsics.cx / f, intrinsics.cy / f)
        return images, small, intr
    import torch
    import torch.nn.functional as F

    scale = min(1.0, size / max(intrinsics.width, intrinsics.height))
    w, h = max(1, round(intrinsics.width * scale)), max(1, round(intrinsics.height * scale))
    if (w, h) == (intrinsics.width, intrinsics.height):
        return images, masks, intrinsics
    small = F.interpolate(torch.from_numpy(masks)[:, None], size=(h, w), mode="area")[:, 0].numpy()
    if images is not None:
        images = torch.from_numpy(images).permute(0, 3, 1, 2)
        images = F.interpolate(images, size=(h, w), mode="area").permute(0, 2, 3, 1).numpy()
    sx, sy = w / intrinsics.width, h / intrinsics.height
    intr = Intrinsics(w, h, intrinsics.fl_x * sx, intrinsics.fl_y * sy, intrinsics.cx * sx, intrinsics.cy * sy)
    return images, small, intr


def check_folder(folder: str | Path) -> Path:
    """`folder` as a Path if it is a folder (the views' one), else SVD3DError saying what FOLDER must be."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    need = "FOLDER must be a folder with transforms.json and its images (an `svd3d orbit` or `svd3d render` output)"
    if not folder.exists():
        raise SVD3DError(f"{folder} does not exist; {need}")
    if folder.name == "transforms.json":
        raise SVD3DError(f"{folder} is a file; {need}: pass its folder, {folder.parent}")
    Image.init()
    if folder.suffix.lower() in Image.EXTENSION:
        raise SVD3DError(f"{folder} is an image, not a folder; {need}; to make one from a photo: svd3d orbit {folder}")
    raise SVD3DError(f"{folder} is a file, not a folder; {need}")


def _frame_paths(folder: Path, frames: list[CameraFrame]) -> list[Path]:
    """The resolved image path of each frame, refusing any that resolves (symlinks included) outside `folder`.
    A file_path without a suffix means its .png, as nerfstudio writes them."""
    root = folder.resolve()
    paths = []
    for i, frame in enumerate(frames):
        path = folder / frame.file_path
        if not path.is_file() and not path.suffix:
            path = path.with_suffix(".png")
        try:
            target = path.resolve()
        except (OSError, RuntimeError, ValueError) as err:  # a symlink loop, a NUL byte
            raise SVD3DError(
                f"{folder}/transforms.json: frame {i} file_path {frame.file_path!r} cannot be resolved ({err}); "
                "give the path of an image inside the folder"
            ) from None
        if not target.is_relative_to(root):
            raise SVD3DError(
                f"{folder}/transforms.json: frame {i} file_path {frame.file_path!r} resolves to {target}, outside "
                f"the dataset folder; copy the image into {folder} and give its path relative to it"
            )
        paths.append(target)
    return paths


def _check_cameras_outside_object(folder: Path, frames: list[CameraFrame]) -> None:
    """Refuse a camera centre inside the object's box [-0.5, 0.5]^3 (svd3d's world): it cannot see the object."""
    for i, frame in enumerate(frames):
        centre = frame.c2w[:3, 3]
        if np.all(np.abs(centre) <= OBJECT_HALF_SIZE):
            raise SVD3DError(
                f"{folder}/transforms.json: frame {i} ({frame.file_path}) transform_matrix puts the camera at "
                f"{np.round(centre, 4).tolist()}, inside the object's box [-0.5, 0.5]^3; svd3d expects cameras "
                "outside it looking at the object at the origin (svd3d orbit and render use radius 2)"
            )


def load_views(folder: str | Path, input_view_weight: float = INPUT_VIEW_WEIGHT) -> ViewSet:
    """Read transforms.json and its images. The first frame (svd3d's input view) gets `input_view_weight`."""
    folder = check_folder(folder)
    intrinsics, frames = read_transforms(folder / "transforms.json")
    if len(frames) < 2:
        raise SVD3DError(f"{folder}/transforms.json lists {len(frames)} view(s); reconstruction needs at least 2")
    _check_cameras_outside_object(folder, frames)
    paths = _frame_paths(folder, frames)
    images, alphas, has_alpha = [], [], []
    for frame, path in zip(frames, paths, strict=True):
        if not path.is_file():
            raise SVD3DError(f"{folder}/transforms.json lists {frame.file_path}, which does not exist")
        try:
            with Image.open(path) as img:
                img.load()
                rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
                has_alpha.append(img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info)
        except OSError as err:
            raise SVD3DError(f"cannot read view {path}: {err}") from None
        if rgba.shape[:2] != (intrinsics.height, intrinsics.width):
            raise SVD3DError(
                f"view {frame.file_path} is {rgba.shape[1]}x{rgba.shape[0]} but transforms.json says "
                f"{intrinsics.width}x{intrinsics.height}; all views must have the size the cameras describe"
            )
        images.append(rgba[..., :3])
        alphas.append(rgba[..., 3])
    images_np = np.stack(images)
    use_alpha = all(has_alpha) and min(a.min() for a in alphas) < 1.0
    if use_alpha:
        masks = np.stack(alphas)
        images_np = images_np * masks[..., None] + (1.0 - masks[..., None])  # composite on white
    else:
        masks = np.stack([mask_from_white(im) for im in images_np])
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    empty = [frames[i].file_path for i in np.flatnonzero(coverage < 1e-4)]
    if len(empty) == len(frames):
        raise SVD3DError(
            f"no foreground in any view of {folder}: images must be RGBA or show the object on a white background"
        )
    if empty:
        raise SVD3DError(f"no foreground in view(s) {', '.join(empty[:3])} of {folder}; remove them or fix the images")
    weights = np.ones(len(frames), np.float32)
    weights[0] = input_view_weight
    return ViewSet(
        images_np.astype(np.float32),
        masks.astype(np.float32),
        np.stack([f.c2w for f in frames]),
        intrinsics,
        weights,
        [f.file_path for f in frames],
        "alpha" if use_alpha else "white background",
    )
