"""A contact sheet of a folder `svd3d curate` wrote: each clip's first, middle and last frame from its source video,
labelled with its name, what was decided and why (the scores in curation.json).

    python benchmarks/curate_sheet.py demo/clips -o assets/readme/curate_demo.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from svd3d.training.videos import iter_frames  # noqa: E402

THUMB = (160, 90)  # one frame
TEXT = 190  # the label's width beside a clip's three frames


def clip_row(frames: list, clip: dict):
    """One clip: its three frames side by side and a label (name, decision, span, scores)."""
    from PIL import Image, ImageDraw

    row = Image.new("RGB", (3 * THUMB[0] + TEXT, THUMB[1]), (255, 255, 255))
    for i, frame in enumerate(frames):
        row.paste(Image.fromarray(frame).resize(THUMB, Image.Resampling.LANCZOS), (i * THUMB[0], 0))
    chaos = "-" if clip["chaos"] is None else f"{clip['chaos']:.2f}"
    decided = "kept" if clip["kept"] else f"dropped: {clip['reason'].replace('_', ' ')}"
    draw = ImageDraw.Draw(row)
    colour = (20, 110, 40) if clip["kept"] else (170, 30, 30)
    x = 3 * THUMB[0] + 8
    draw.text((x, 8), clip["id"], fill=(20, 20, 20))
    draw.text((x, 26), decided, fill=colour)
    draw.text((x, 44), f"frames {clip['start_frame']}-{clip['end_frame']}", fill=(60, 60, 60))
    draw.text((x, 62), f"motion {clip['motion']:.2f}  chaos {chaos}", fill=(60, 60, 60))
    return row


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, help="a folder svd3d curate wrote (curation.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--columns", type=int, default=2, help="clips side by side")
    args = parser.parse_args()
    manifest = json.loads((args.clips / "curation.json").read_text())
    videos = Path(manifest["videos_folder"])
    rows = []
    for video in manifest["videos"]:
        clips = [c for c in manifest["clips"] if c["source"] == video["source"]]
        picks = {
            c["id"]: (c["start_frame"], (c["start_frame"] + c["end_frame"]) // 2, c["end_frame"] - 1) for c in clips
        }
        wanted = {t for ts in picks.values() for t in ts}
        frames = {t: f for t, f in enumerate(iter_frames(videos / video["source"])) if t in wanted}
        rows += [clip_row([frames[t] for t in picks[c["id"]]], c) for c in clips]
    gap = 6
    width, height = rows[0].size
    n_rows = -(-len(rows) // args.columns)
    sheet = Image.new("RGB", (args.columns * (width + gap) - gap, n_rows * (height + gap) - gap), (255, 255, 255))
    for i, row in enumerate(rows):
        sheet.paste(row, ((i % args.columns) * (width + gap), (i // args.columns) * (height + gap)))
    sheet.quantize(256, dither=Image.Dither.NONE).save(args.output, optimize=True)  # small enough for a README
    print(f"wrote {args.output} ({len(rows)} clips)")


if __name__ == "__main__":
    main()
