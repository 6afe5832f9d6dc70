"""Draw the example inputs in this folder (procedural, so they carry no third-party rights).

python assets/examples/make_examples.py

- balloon.png: a 16:9 photo-like scene for full-size SVD / SVD-XT.
- toy_*.png: objects from svd3d's procedural generator (the bundled tiny-orbit model's training distribution),
  made from a seed the training data never uses (training: seed 1), rendered at 512 px with transparency.
- shapes_*.png: first frames of synthetic scenes like the bundled tiny-video model's training clips, from seeds its
  training data never uses.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def balloon(width: int = 1024, height: int = 576) -> Image.Image:
    """A hot-air balloon over hills at dusk: a clear subject, a background with depth, room to move."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([70, 120, 200]) + y * np.array([250, 190, 140])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    xs = np.arange(width)
    for base, amp, colour in ((0.72, 0.05, (70, 110, 80)), (0.82, 0.04, (45, 85, 55))):
        ridge = height * (base + amp * np.sin(xs / width * 7.0 + base * 9))
        draw.polygon(
            [(0, height)] + list(zip(xs.tolist(), ridge.tolist(), strict=True)) + [(width, height)], fill=colour
        )
    cx, cy, r = int(width * 0.58), int(height * 0.36), int(height * 0.17)
    stripes = [(220, 60, 40), (245, 200, 60)]
    for i in range(8):
        box = [cx - r + i * r // 8, cy - r, cx + r - i * r // 8, cy + r]
        draw.ellipse(box, fill=stripes[i % 2])
    draw.polygon(
        [(cx - r * 0.55, cy + r * 0.85), (cx + r * 0.55, cy + r * 0.85), (cx, cy + r * 1.35)], fill=(200, 70, 40)
    )
    draw.line([(cx - r * 0.3, cy + r * 1.2), (cx - r * 0.22, cy + r * 1.55)], fill=(60, 40, 30), width=3)
    draw.line([(cx + r * 0.3, cy + r * 1.2), (cx + r * 0.22, cy + r * 1.55)], fill=(60, 40, 30), width=3)
    draw.rectangle([cx - r * 0.22, cy + r * 1.55, cx + r * 0.22, cy + r * 1.8], fill=(120, 80, 40))
    return img.filter(ImageFilter.SMOOTH)


EXAMPLE_SEED = 2026  # the bundled models trained on seeds 0 (clips) and 1 (objects)
TOYS = {
    "a": 9,
    "b": 11,
    "c": 0,
}  # name -> object index under EXAMPLE_SEED, chosen among the first 12 for views kept well
SHAPES = {"a": 5, "b": 8}  # name -> scene index under EXAMPLE_SEED, chosen among the first 12 for clips kept well


def toy(index: int, size: int = 512, elevation: float = 10.0) -> Image.Image:
    """Procedural object `index` (seed EXAMPLE_SEED), seen from `elevation` degrees, RGBA on transparency."""
    from svd3d.render import render_views
    from svd3d.training.data import object_rng
    from svd3d.training.procedural import random_object

    mesh = random_object(object_rng(EXAMPLE_SEED, index))
    rgba = render_views(mesh, [elevation], [0.0], size, light="headlight").rgba[0]
    return Image.fromarray(rgba, "RGBA")


def shapes(index: int, size: int = 512) -> Image.Image:
    """The middle frame of synthetic scene `index` (seed EXAMPLE_SEED) at `size` px."""
    from svd3d.training.clips import random_scene, render_scene

    scene = random_scene(np.random.default_rng([EXAMPLE_SEED, index]), size)
    return Image.fromarray(render_scene(scene, frames=1, fps=8.0)[0])


def main() -> None:
    written = {"balloon.png": balloon()}
    written.update({f"toy_{name}.png": toy(i) for name, i in TOYS.items()})
    written.update({f"shapes_{name}.png": shapes(i) for name, i in SHAPES.items()})
    for name, image in written.items():
        image.save(HERE / name, optimize=True)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
