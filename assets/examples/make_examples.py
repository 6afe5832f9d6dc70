"""Draw the example inputs in this folder (procedural, so they carry no third-party rights).

python assets/examples/make_examples.py
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


if __name__ == "__main__":
    balloon().save(HERE / "balloon.png", optimize=True)
    print("wrote", HERE / "balloon.png")
