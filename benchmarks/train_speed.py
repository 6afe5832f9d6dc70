"""Training throughput of the tiny recipes on this machine: steps/s and samples/s of the real loop.

The orbit recipe starts from a tiny-video model made by a 1-step run of recipes/tiny-video.toml (its weights do
not matter for speed). Data: small generated datasets (their size does not change the per-step cost: every step
reads cached latents). Each case trains `--steps` steps after 3 warm-up steps.

    python benchmarks/train_speed.py [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from svd3d.training.loop import train

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def measure(recipe: str, run: Path, steps: int, overrides: dict) -> tuple[float, float]:
    """(steps/s, seconds per step) over `steps` steps after 3 warm-up steps (first call pays data + caches)."""
    base = {"train.save_every": 10_000, **overrides}
    train(RECIPES / f"{recipe}.toml", run, overrides={**base, "train.steps": 3}, progress=False)
    start = time.perf_counter()
    result = train(RECIPES / f"{recipe}.toml", run, overrides={**base, "train.steps": 3 + steps}, progress=False)
    wall = time.perf_counter() - start
    return result.steps_per_second, wall / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="svd3d-train-speed-"))
    video = {"data.count": 32, "data.held_out": 0, "train.vae_steps": 0}
    train(RECIPES / "tiny-video.toml", root / "video-init", overrides={**video, "train.steps": 1}, progress=False)
    orbit = {"model.init": str(root / "video-init" / "model"), "data.count": 16, "data.held_out": 0}
    cases = [
        ("tiny-orbit", "as shipped (bf16 autocast, batch 8)", orbit),
        ("tiny-orbit", "float32", {**orbit, "train.precision": "no"}),
        ("tiny-orbit", "bf16, gradient checkpointing", {**orbit, "train.gradient_checkpointing": True}),
        ("tiny-video", "as shipped (bf16 autocast, batch 16)", video),
        ("tiny-video", "float32", {**video, "train.precision": "no"}),
    ]
    rows = []
    for i, (recipe, label, overrides) in enumerate(cases):
        rate, per_step = measure(recipe, root / f"run{i}", args.steps, overrides)
        batch = 8 if recipe == "tiny-orbit" else 16
        rows.append((recipe, label, rate, per_step, rate * batch))
        print(f"  {recipe:10s} {label:40s} {rate:.2f} steps/s", flush=True)
    print(f"\n{args.threads} threads, {args.steps} timed steps per case, torch {torch.__version__}")
    print("| recipe | case | steps/s | s/step (call wall) | samples/s |")
    print("|---|---|---|---|---|")
    for recipe, label, rate, per_step, samples in rows:
        print(f"| {recipe} | {label} | {rate:.2f} | {per_step:.3f} | {samples:.1f} |")


if __name__ == "__main__":
    main()
