"""svd3d video vs diffusers' StableVideoDiffusionPipeline on the same random-weight model, same machine, same run.

Prints one table: per-step sampling time and end-to-end time (image in, frames out; model loading excluded), for
each, the median of --repeats runs, and the ratio ours / diffusers (< 1 means svd3d is faster).

    python benchmarks/video_cpu.py                 # tiny (64 px, 8 frames) and small (256 px, 14 frames)
    python benchmarks/video_cpu.py --threads 2     # what CI machines have
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from svd3d.models import load_model
from svd3d.models.diffusers_io import save_diffusers
from svd3d.models.sgm_config import UNetArch
from svd3d.models.tiny import TINY_UNET, tiny_random_model
from svd3d.pipelines.video import generate_video

CASES = {  # name: (UNet arch, size, frames, steps)
    "tiny": (TINY_UNET, 64, 8, 10),
    "small": (replace(TINY_UNET, channel_mult=(1, 2, 2), attention_resolutions=(4, 2, 1)), 256, 14, 10),
}


def build_folder(arch: UNetArch, side: int, frames: int, root: Path) -> Path:
    model = tiny_random_model("video", seed=0, unet=arch)
    model.info = replace(model.info, width=side, height=side, num_frames=frames)
    return save_diffusers(model, root / f"model-{side}")


def test_image(side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side]
    rgb = np.stack([x * 255 // side, y * 255 // side, np.full_like(x, 120)], -1).astype(np.uint8)
    return Image.fromarray(rgb)


def time_ours(folder: Path, image, frames: int, steps: int) -> tuple[float, float]:
    model = load_model(folder)
    stamps: list[float] = []
    import svd3d.pipelines.video as video_mod

    real = video_mod.sample_euler

    def timed(denoise, x, sigmas, callback=None):
        def cb(i, x_in, d):
            stamps.append(time.perf_counter())
            if callback:
                callback(i, x_in, d)

        stamps.append(time.perf_counter())
        return real(denoise, x, sigmas, callback=cb)

    video_mod.sample_euler = timed
    try:
        start = time.perf_counter()
        generate_video(
            image, model=model, frames=frames, steps=steps, seed=0, device="cpu", dtype="float32", progress=False
        )
        total = time.perf_counter() - start
    finally:
        video_mod.sample_euler = real
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return per_step, total


def time_diffusers(folder: Path, image, frames: int, steps: int, side: int) -> tuple[float, float]:
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    stamps: list[float] = []

    def cb(p, i, t, kw):
        stamps.append(time.perf_counter())
        return {}

    start = time.perf_counter()
    stamps.append(start)
    pipe(
        image,
        height=side,
        width=side,
        num_frames=frames,
        num_inference_steps=steps,
        min_guidance_scale=1.5,
        max_guidance_scale=3.0,
        decode_chunk_size=min(frames, 14),
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        callback_on_step_end=cb,
    )
    total = time.perf_counter() - start
    # the first stamp is before CLIP / VAE encoding: measure steps between step callbacks only
    per_step = (stamps[-1] - stamps[1]) / (len(stamps) - 2)
    return per_step, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers.utils import logging as dl

    dl.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            arch, side, frames, steps = CASES[name]
            folder = build_folder(arch, side, frames, Path(tmp))
            image = test_image(side)
            ours = [time_ours(folder, image, frames, steps) for _ in range(args.repeats + 1)][1:]  # 1 warm-up
            ref = [time_diffusers(folder, image, frames, steps, side) for _ in range(args.repeats + 1)][1:]
            for metric, idx in (("per step", 0), ("end to end", 1)):
                a = statistics.median(r[idx] for r in ours)
                b = statistics.median(r[idx] for r in ref)
                rows.append((f"{name} {side}px x{frames}, {steps} steps", metric, a, b))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, CPU, float32, median of {args.repeats}")
    print(f"| {'case':28s} | {'metric':10s} | {'svd3d (s)':>9s} | {'diffusers (s)':>13s} | {'ratio':>5s} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 11}|{'-' * 15}|{'-' * 7}|")
    for case, metric, a, b in rows:
        print(f"| {case:28s} | {metric:10s} | {a:9.4f} | {b:13.4f} | {a / b:5.2f} |")


if __name__ == "__main__":
    main()
