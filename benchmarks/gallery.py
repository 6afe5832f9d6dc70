"""The README's gallery, made by the bundled models from assets/examples, with each example's timings.

    python benchmarks/gallery.py [--out out/gallery]

- orbit: for each toy_*.png, `svd3d orbit` as a user runs it (tiny-orbit views, then the reconstruction): one row
  of the input and 7 of the 21 views, one row of the textured GLB rendered at those cameras (at 192 px, lit), and
  the GLB from above. Writes assets/readme/gallery_orbit.png.
- video: for each shapes_*.png, `svd3d video` (tiny-video): the input, then every frame. Writes
  assets/readme/gallery_video.png.

Prints a table: example, seconds for the views, the mesh and in all (image -> GLB), silhouette IoU of the mesh.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
README = ROOT / "assets" / "readme"
CELL = 128


def orbit_rows(image: Path, work: Path) -> tuple[list, list[str], dict]:
    from svd3d import generate_asset
    from svd3d.cameras import Intrinsics, orbit_c2w
    from svd3d.pipelines.common import to_uint8
    from svd3d.render import render_cameras

    out = work / image.stem
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    asset = generate_asset(image, output=out, progress=False, recon={"progress": False})  # as `svd3d orbit` does
    t_all = time.perf_counter() - started
    views, recon = asset.views, asset.mesh
    t_views = sum(views.timings.values())
    picks = np.arange(0, 21, 3)
    k, i = 192 / views.intrinsics.width, views.intrinsics
    big = Intrinsics(192, 192, i.fl_x * k, i.fl_y * k, i.cx * k, i.cy * k)  # the views' cameras at 192 px
    lit = render_cameras(recon.mesh, views.c2w[picks], big).rgba
    above = render_cameras(recon.mesh, orbit_c2w(np.array([35.0]), np.array([45.0])), big).rgba[0]
    images = [Image.open(image), *to_uint8(views.frames[picks])]
    images += [above, *lit]
    labels = ["input"] + [f"view {views.azimuths[i]:.0f}° / {views.elevations[i]:.0f}°" for i in picks]
    labels += ["mesh, above"] + [f"mesh {views.azimuths[i]:.0f}°" for i in picks]
    quality = recon.report["quality"]
    return images, labels, {"views_s": t_views, "mesh_s": t_all - t_views, "all_s": t_all,
                            "iou": quality["silhouette_iou_mean"]}  # fmt: skip


def video_row(image: Path) -> tuple[list, list[str], float]:
    from svd3d.pipelines.video import generate_video

    started = time.perf_counter()
    clip = generate_video(image, progress=False)
    seconds = time.perf_counter() - started
    frames = list(clip.frames_uint8())
    return [Image.open(image), *frames], ["input"] + [f"frame {i}" for i in range(len(frames))], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "gallery", help="work folder for the outputs")
    args = parser.parse_args()
    from svd3d import media

    images, labels = [], []
    print("| example | views (s) | mesh (s) | image -> GLB (s) | silhouette IoU |")
    print("|---|---|---|---|---|")
    for path in sorted(EXAMPLES.glob("toy_*.png")):
        row, names, t = orbit_rows(path, args.out)
        images += row
        labels += names
        print(f"| {path.name} | {t['views_s']:.1f} | {t['mesh_s']:.1f} | {t['all_s']:.1f} | {t['iou']:.3f} |")
    media.contact_sheet(images, labels, columns=8, cell=CELL).save(README / "gallery_orbit.png", optimize=True)

    images, labels = [], []
    print("\n| example | clip (s) |")
    print("|---|---|")
    for path in sorted(EXAMPLES.glob("shapes_*.png")):
        row, names, seconds = video_row(path)
        images += row
        labels += names
        print(f"| {path.name} | {seconds:.1f} |")
    columns = len(names)
    media.contact_sheet(images, labels, columns=columns, cell=CELL).save(README / "gallery_video.png", optimize=True)
    print(f"wrote {README / 'gallery_orbit.png'} and {README / 'gallery_video.png'}")


if __name__ == "__main__":
    main()
