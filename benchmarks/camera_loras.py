"""The README's camera-motion LoRA picture: one held-out picture animated by tiny-video alone and with each bundled
camera-motion adapter (the same seed), frame by frame, and each clip's measured motion.

    python benchmarks/camera_loras.py [--image N] [--seed S] [--scale K] [--out assets/readme/camera_loras.png]

The picture is input N of `svd3d eval camera`'s held-out set (synthetic, seed 777, which no recipe trains on) and
S is the sampling seed (the eval's input N uses seed N); every adapter is applied at scale K. Each row: the
variant's 8 frames. Prints each clip's flow-measured motion (svd3d.eval.flow) as a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=int, default=0, help="which held-out picture (eval camera's input N)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed [N, as svd3d eval camera uses]")
    parser.add_argument("--scale", type=float, default=1.0, help="every adapter's scale [1]")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "readme" / "camera_loras.png")
    args = parser.parse_args()

    from svd3d.eval.camera import held_out_images
    from svd3d.eval.flow import global_motion
    from svd3d.media import contact_sheet
    from svd3d.models import load_model
    from svd3d.models.registry import adapter_entries
    from svd3d.pipelines.video import generate_video

    model = load_model("tiny-video")
    picture = held_out_images(args.image + 1, model.info.width)[args.image]
    seed = args.image if args.seed is None else args.seed
    variants = [("tiny-video", [])] + [(name, [(name, args.scale)]) for name in adapter_entries()]
    images, labels = [], []
    print("| variant | flow x (px/frame) | flow y (px/frame) | divergence (%/frame) |")
    print("|---|---|---|---|")
    for name, loras in variants:
        clip = generate_video(Image.fromarray(picture), model=model, seed=seed, loras=loras, progress=False)
        frames = clip.frames_uint8()
        motion = global_motion(frames)
        print(f"| {name} | {motion.flow_x:+.2f} | {motion.flow_y:+.2f} | {100 * motion.divergence:+.2f} |")
        images += list(frames)
        short = f"{name.removeprefix('tiny-video-')} x{args.scale:g}" if loras else "base"
        labels += [short] + [f"frame {t}" for t in range(1, len(frames))]
    sheet = contact_sheet(images, labels, columns=len(images) // len(variants), cell=96)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height}, {args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
