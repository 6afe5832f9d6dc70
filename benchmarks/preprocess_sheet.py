"""Object preprocessing on a folder of photos: a contact sheet to look at, and a table of what each photo got.

For each image: the source (on a checkerboard where it is transparent), its mask, and the prepared 576 x 576
conditioning image, labelled with the file name and the method. Prints, per image, the method, the mask's area
fraction on the prepared canvas and the time prepare_object took.

    python benchmarks/preprocess_sheet.py                                 # /work/shared/bench/images
    python benchmarks/preprocess_sheet.py photos/ -o out/sheet.png --object-fraction 0.8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from svd3d.errors import SVD3DError
from svd3d.image import load_image
from svd3d.segment import prepare_object

DEFAULT_IMAGES = Path("/work/shared/bench/images")
SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
TILE = 288  # side of each tile on the sheet
LABEL = 18  # height of the label strip under each row


def checkerboard(width: int, height: int, cell: int = 12) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    board = np.where(((x // cell) + (y // cell)) % 2 == 0, 200, 240).astype(np.uint8)
    return Image.fromarray(board, "L").convert("RGB")


def thumbnail(img: Image.Image, side: int) -> Image.Image:
    """Fit inside side x side (aspect kept), transparency shown on a checkerboard, centred on grey."""
    scale = side / max(img.size)
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    if small.mode == "RGBA":
        board = checkerboard(*small.size).convert("RGBA")
        small = Image.alpha_composite(board, small).convert("RGB")
    tile = Image.new("RGB", (side, side), (96, 96, 96))
    tile.paste(small.convert("RGB"), ((side - small.width) // 2, (side - small.height) // 2))
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="?", type=Path, default=DEFAULT_IMAGES, help="folder of images")
    parser.add_argument("-o", "--output", type=Path, default=Path("out/preprocess_sheet.png"), help="sheet PNG")
    parser.add_argument("--size", type=int, default=576)
    parser.add_argument("--object-fraction", type=float, default=0.85)
    args = parser.parse_args()

    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {args.images}")
    rows = []
    print(f"{'image':<24} {'size':>11} {'method':<11} {'mask area':>9} {'ms':>8}")
    for path in files:
        img = load_image(path)
        start = time.perf_counter()
        try:
            prepared = prepare_object(img, args.size, args.object_fraction, name=str(path))
        except SVD3DError as err:
            print(f"{path.name:<24} {img.width:>5}x{img.height:<5} error: {err}")
            continue
        ms = (time.perf_counter() - start) * 1000.0
        area = float(prepared.mask.mean())
        size = f"{img.width}x{img.height}"
        print(f"{path.name:<24} {size:>11} {prepared.method:<11} {area:>9.3f} {ms:>8.1f}")
        mask = Image.fromarray(np.round(prepared.mask * 255).astype(np.uint8), "L").convert("RGB")
        rows.append((f"{path.name}  [{prepared.method}]", [img, mask, prepared.image]))

    sheet = Image.new("RGB", (3 * TILE, len(rows) * (TILE + LABEL)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, (source, mask, prepared_image)) in enumerate(rows):
        top = r * (TILE + LABEL)
        sheet.paste(thumbnail(source, TILE), (0, top))
        sheet.paste(mask.resize((TILE, TILE), Image.Resampling.LANCZOS), (TILE, top))
        sheet.paste(prepared_image.resize((TILE, TILE), Image.Resampling.LANCZOS), (2 * TILE, top))
        draw.rectangle((2 * TILE, top, 3 * TILE - 1, top + TILE - 1), outline=(180, 180, 180))
        draw.text((4, top + TILE + 3), label, fill=(0, 0, 0))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.stem + ".tmp.png")
    sheet.save(tmp)
    tmp.replace(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
