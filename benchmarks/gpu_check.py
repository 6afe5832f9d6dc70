"""The GPU check: one script that measures what a user of a CUDA card gets, and writes it as one markdown table.

On one GPU (an H100 runs all of it in about 8 minutes) with random weights in the real architectures (timing and
memory do not depend on the weights):

1. SV3D_p, 21 views at 576x576, 50 steps: seconds per orbit and peak GPU memory in float16 and bfloat16, by
   default and with each low-memory option (--offload, smaller --decode-chunk), and with torch.compile.
2. SVD-XT, 25 frames at 576x1024 (benchmarks/video_gpu.py): svd3d against diffusers' StableVideoDiffusionPipeline
   on the same card, as a ratio.
3. The default reconstruction on CUDA (21 views at 576 px, the radiance field's GPU path): needs open3d, whose
   wheel does not travel to an offline device; without it this part is skipped and the table says so.

Goals it checks: an SV3D_p orbit under 8 s with peak memory under 16 GB by default, and a mode under 12 GB.

    python benchmarks/gpu_check.py [--out gpu_check.md] [--skip compile video recon]
    python benchmarks/gpu_check.py --tiny --device cpu     # the same code on tiny random models (the test suite)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import video_gpu  # noqa: E402  (benchmarks/video_gpu.py, beside this file)

from svd3d.models.bundle import SVDModel  # noqa: E402
from svd3d.models.sgm_config import released_arch  # noqa: E402
from svd3d.models.sgm_load import empty_modules, restore_clip_buffers  # noqa: E402
from svd3d.models.tiny import tiny_random_model  # noqa: E402
from svd3d.pipelines.orbit import generate_orbit  # noqa: E402

ORBIT_SECONDS_GOAL = 8.0
DEFAULT_MEMORY_GOAL_GB = 16.0
SMALL_CARD_GB = 12.0


def random_model(name: str, device: torch.device, dtype: torch.dtype, tiny: bool) -> SVDModel:
    """A released architecture (sv3d_p, svd_xt) with scaled random weights; a tiny random model with --tiny."""
    if tiny:
        return tiny_random_model("orbit" if name.startswith("sv3d") else "video", dtype=dtype).to(device)
    arch = released_arch(name)
    unet, vae, clip = empty_modules(arch)
    for module in (unet, vae, clip):
        module.to_empty(device=device)
        video_gpu.random_init_(module)
        module.to(dtype)
    restore_clip_buffers(clip)
    return SVDModel(unet, vae, clip, arch.info, source=f"random {name}", fingerprint="random").eval()


def measure(fn, device: torch.device) -> tuple[float, float]:
    """(seconds, peak GiB) of one call after a warm-up call (compilation, cuDNN autotuning, allocator)."""
    fn()
    video_gpu.peak_reset(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, video_gpu.peak_gb(device)


def orbit_rows(args, device: torch.device) -> list[dict]:
    """SV3D_p orbits: each dtype by default, then the low-memory options and torch.compile in float16."""
    size, frames, steps = (64, 5, 2) if args.tiny else (576, 21, 50)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    cases = [(dtype, "default", {}) for dtype in args.dtypes]
    base = args.dtypes[0]  # the options are measured in the first dtype
    cases += [(base, "--offload", {"offload": True})]
    cases += [(base, f"--decode-chunk {n}", {"decode_chunk": n}) for n in (4, 1)]
    if "compile" not in args.skip:
        cases += [(base, "torch.compile", {"compile": True})]
    rows = []
    for dtype_name, label, options in cases:
        dtype = getattr(torch, dtype_name)
        model = random_model("sv3d_p", torch.device("cpu") if options.get("offload") else device, dtype, args.tiny)
        if options.pop("compile", False):
            model.unet = torch.compile(model.unet)

        def orbit(model=model, options=options, dtype_name=dtype_name):
            return generate_orbit(image, model=model, frames=frames, steps=steps, size=size, preprocess=False,
                                  dtype=dtype_name, device=str(device), progress=False, **options)  # fmt: skip

        seconds, peak = measure(orbit, device)
        rows.append({"job": f"SV3D_p {frames} x {size}², {steps} steps", "dtype": dtype_name, "option": label,
                     "seconds": seconds, "peak_gb": peak})  # fmt: skip
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def video_rows(args) -> list[dict]:
    """SVD-XT, svd3d against diffusers on the same card (benchmarks/video_gpu.py's run)."""
    options = argparse.Namespace(device=args.device, steps=3 if args.tiny else 25, decode_chunk=14, tiny=args.tiny)
    rows = []
    for dtype_name in args.dtypes:
        pair = video_gpu.run(options, getattr(torch, dtype_name), False)
        for name, dtype, _, total, _, peak in pair:
            rows.append({"job": "SVD-XT 25 x 576x1024, 25 steps" if not args.tiny else "SVD-XT tiny",
                         "dtype": dtype, "option": name, "seconds": total, "peak_gb": peak,
                         "ratio": total / pair[1][3]})  # fmt: skip
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def recon_rows(args, device: torch.device) -> tuple[list[dict], str | None]:
    """The default reconstruction of 21 rendered views on `device`, or why it was skipped."""
    if importlib.util.find_spec("open3d") is None:
        return [], "reconstruction skipped: open3d is not installed here (its wheel is too large to carry offline)"
    import tempfile

    import trimesh

    from svd3d.api import reconstruct, render_orbit

    with tempfile.TemporaryDirectory() as tmp:
        mesh = Path(tmp) / "torus.ply"
        trimesh.creation.torus(0.3, 0.12).export(mesh)
        size = 64 if args.tiny else 576
        views = render_orbit(mesh, Path(tmp) / "views", size=size, frames=6 if args.tiny else 21, supersample=1)
        start = time.perf_counter()
        video_gpu.peak_reset(device)
        result = reconstruct(views.output, output=Path(tmp) / "mesh", device=str(device), progress=False,
                             texture=256 if args.tiny else 1024)  # fmt: skip
        seconds = time.perf_counter() - start
        iou = result.report["quality"]["silhouette_iou_mean"]
    return [{"job": f"svd3d recon, {views.views} views at {size} px", "dtype": "float32", "option": f"field (IoU {iou:.3f})",
             "seconds": seconds, "peak_gb": video_gpu.peak_gb(device)}], None  # fmt: skip


def verdicts(rows: list[dict]) -> list[str]:
    """The goals, met or not, from the SV3D_p rows."""
    orbit = [r for r in rows if r["job"].startswith("SV3D_p")]
    if not all(np.isfinite(r["peak_gb"]) for r in orbit):
        return ["- the goals are a GPU's: not judged on the CPU"]
    default = [r for r in orbit if r["option"] == "default"][:1]  # the first dtype's
    lines = []
    if default:
        r = default[0]
        ok = r["seconds"] < ORBIT_SECONDS_GOAL and r["peak_gb"] < DEFAULT_MEMORY_GOAL_GB
        lines.append(f"- default {r['dtype']} orbit: {r['seconds']:.1f} s, {r['peak_gb']:.1f} GiB peak -> goal "
                     f"(< {ORBIT_SECONDS_GOAL:g} s, < {DEFAULT_MEMORY_GOAL_GB:g} GB) {'met' if ok else 'NOT met'}")  # fmt: skip
    fits = [r for r in orbit if r["peak_gb"] < SMALL_CARD_GB]
    best = min(fits, key=lambda r: r["seconds"]) if fits else None
    lines.append(f"- a {SMALL_CARD_GB:g} GB card: " + (f"{best['option']} ({best['dtype']}, {best['peak_gb']:.1f} GiB, "
                 f"{best['seconds']:.1f} s)" if best else "no measured mode fits"))  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", nargs="*", default=["float16", "bfloat16"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["compile", "video", "recon"])
    parser.add_argument("--tiny", action="store_true", help="tiny random models and sizes (tests it on a CPU)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        args.dtypes = ["float32"]  # half precision on the CPU is neither fast nor what a GPU user gets
    start = time.perf_counter()

    rows, notes = orbit_rows(args, device), []
    if "video" not in args.skip:
        rows += video_rows(args)
    if "recon" not in args.skip:
        recon, skipped = recon_rows(args, device)
        rows += recon
        notes += [skipped] if skipped else []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [f"GPU check on {name}, torch {torch.__version__}{' (tiny models)' if args.tiny else ''}", "",
             "| job | dtype | option | seconds | peak GPU GiB | vs diffusers |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        lines.append(f"| {r['job']} | {r['dtype']} | {r['option']} | {r['seconds']:.2f} | {r['peak_gb']:.2f} | "
                     f"{ratio} |")  # fmt: skip
    lines += ["", *verdicts(rows), *[f"- {n}" for n in notes], f"- whole check: {time.perf_counter() - start:.0f} s"]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
