"""The evaluation families of `svd3d eval orbit --family`, side by side: a contact sheet of their inputs.

For a few objects of each family (the bundled generator's kind, the held-out family, the bench meshes), one row:
the picture a user would give (another camera, off centre, plain background), the conditioning image svd3d orbit's
preprocessing makes of it, and the ground truth the views are scored against (the input view and three other views
of the orbit). Everything is rendered by svd3d itself; nothing is downloaded.

    python benchmarks/family_sheet.py                                   # assets/readme/family_inputs.png
    python benchmarks/family_sheet.py --meshes /work/shared/bench/meshes --rows 3 -o out/families.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from svd3d.eval.family import FAMILY_SEED, family_samples

TILE = 96
LABEL = 20
TITLES = {
    "procedural": "in-family: the bundled generator's kind (objects unseen, seed 777)",
    "held-out": "held-out family: star prisms, trefoil knots, pastels, light from the right (never in training)",
    "meshes": "bench meshes, rendered by svd3d (never in training)",
}
COLUMNS = ("picture", "model input", "truth: view 0", "view 5", "view 10", "view 15")


def tile(image: Image.Image) -> Image.Image:
    """Fit inside TILE x TILE, centred on white (pictures keep their aspect, 64 px views are enlarged crisply)."""
    scale = TILE / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    resample = Image.Resampling.NEAREST if max(image.size) <= TILE else Image.Resampling.LANCZOS
    out = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    out.paste(image.convert("RGB").resize(size, resample), ((TILE - size[0]) // 2, (TILE - size[1]) // 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=Path, default=Path("/work/shared/bench/meshes"))
    parser.add_argument("--rows", type=int, default=3, help="objects per family")
    parser.add_argument("--seed", type=int, default=FAMILY_SEED)
    parser.add_argument("-o", "--output", type=Path, default=Path("assets/readme/family_inputs.png"))
    args = parser.parse_args()

    sections = []
    for family in ("procedural", "held-out", "meshes"):
        meshes = args.meshes if family == "meshes" else None
        rows = []
        for k, sample in enumerate(family_samples(family, args.rows, meshes=meshes, seed=args.seed)):
            if k % 2:  # the static orbit of each object is enough to show it
                continue
            truth = [Image.fromarray(sample.truth[v, ..., :3]) for v in (0, 5, 10, 15)]
            cells = [tile(sample.picture), tile(sample.prepared.image), *(tile(t) for t in truth)]
            rows.append(np.concatenate([np.asarray(c) for c in cells], axis=1))
        body = Image.fromarray(np.concatenate(rows, axis=0))
        section = Image.new("RGB", (body.width, body.height + LABEL), (255, 255, 255))
        ImageDraw.Draw(section).text((4, 4), TITLES[family], fill=(0, 0, 0))
        section.paste(body, (0, LABEL))
        sections.append(section)
    width = sections[0].width
    header = Image.new("RGB", (width, LABEL), (235, 235, 235))
    draw = ImageDraw.Draw(header)
    for i, name in enumerate(COLUMNS):
        draw.text((i * TILE + 4, 4), name, fill=(0, 0, 0))
    sheet = Image.new("RGB", (width, LABEL + sum(s.height for s in sections)), (255, 255, 255))
    sheet.paste(header, (0, 0))
    y = LABEL
    for section in sections:
        sheet.paste(section, (0, y))
        y += section.height
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"wrote {args.output} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
