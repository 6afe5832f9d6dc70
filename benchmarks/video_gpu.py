"""Full-size SVD-XT (25 frames, 576x1024) with random weights on a GPU: svd3d vs diffusers' pipeline, same card.

For each dtype (float16, bfloat16) and with / without torch.compile on the UNet: seconds per sampling step,
end-to-end seconds (image in, frames out) and peak GPU memory. Random weights: timing and memory only.

    python benchmarks/video_gpu.py                       # on a CUDA machine
    python benchmarks/video_gpu.py --tiny --device cpu   # smoke-test this script on a CPU with a tiny model
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from PIL import Image

from svd3d.models.bundle import SVDModel
from svd3d.models.sgm_config import released_arch
from svd3d.models.sgm_load import empty_modules, restore_clip_buffers
from svd3d.pipelines.video import generate_video


def random_init_(module: torch.nn.Module, seed: int = 0) -> None:
    """Scaled random weights (N(0, 1/fan_in) matrices, unit norms, zero biases): finite activations in fp16."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=g)
            elif name.endswith("weight") and "norm" in name:
                p.fill_(1.0)
            else:
                p.zero_()


def full_size_model(device: torch.device, dtype: torch.dtype, tiny: bool) -> SVDModel:
    if tiny:
        from svd3d.models.tiny import tiny_random_model

        return tiny_random_model("video", dtype=dtype).to(device)
    arch = released_arch("svd_xt")
    unet, vae, clip = empty_modules(arch)
    for module in (unet, vae, clip):
        module.to_empty(device=device)
        random_init_(module)
        module.to(dtype)
    restore_clip_buffers(clip)
    return SVDModel(unet, vae, clip, arch.info, source="random svd_xt", fingerprint="random").eval()


def diffusers_pipeline(model: SVDModel):
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor

    from svd3d.models.diffusers_io import SCHEDULER_CONFIG

    stock = UNetSpatioTemporalConditionModel.from_config(
        {k: v for k, v in model.unet.config.items() if k not in ("vector_fields", "resnet_eps")}
    )
    stock.load_state_dict(model.unet.state_dict(), assign=True)
    scheduler = EulerDiscreteScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if k[0] != "_"})
    size = model.image_encoder.config.image_size
    extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    pipe = StableVideoDiffusionPipeline(model.vae, model.image_encoder, stock, scheduler, extractor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def peak_reset(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def run(args, dtype: torch.dtype, compiled: bool) -> list[tuple]:
    device = torch.device(args.device)
    model = full_size_model(device, dtype, args.tiny)
    info = model.info
    width, height = (64, 64) if args.tiny else (info.width, info.height)
    frames, steps = (8, 3) if args.tiny else (25, args.steps)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))
    pipe = diffusers_pipeline(model)
    if compiled:
        model.unet = torch.compile(model.unet)
        pipe.unet = torch.compile(pipe.unet)

    def ours():
        return generate_video(
            image, model=model, frames=frames, steps=steps, size=(width, height), decode_chunk=args.decode_chunk,
            device=str(device), dtype=str(dtype).removeprefix("torch."), progress=False,
        )  # fmt: skip

    def theirs():
        return pipe(
            image, height=height, width=width, num_frames=frames, num_inference_steps=steps,
            decode_chunk_size=args.decode_chunk, min_guidance_scale=1.5, max_guidance_scale=3.0,
            generator=torch.Generator().manual_seed(0), output_type="np",
        )  # fmt: skip

    rows = []
    for name, fn in (("svd3d", ours), ("diffusers", theirs)):
        fn()  # warm-up (and compilation)
        peak_reset(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - start
        rows.append((name, str(dtype).removeprefix("torch."), compiled, total, total / steps, peak_gb(device)))
    return rows  # the models go out of scope here; the caller empties the CUDA cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--decode-chunk", type=int, default=14)
    parser.add_argument("--dtypes", nargs="*", default=["float16", "bfloat16"])
    parser.add_argument("--compile", choices=["off", "on", "both"], default="both")
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke test on CPU)")
    args = parser.parse_args()
    rows = []
    for dtype_name in args.dtypes:
        for compiled in {"off": [False], "on": [True], "both": [False, True]}[args.compile]:
            rows += run(args, getattr(torch, dtype_name), compiled)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    steps = 3 if args.tiny else args.steps
    print(f"\n{name}, torch {torch.__version__}, SVD-XT {'tiny' if args.tiny else '25 x 576x1024'}, {steps} steps")
    print("| pipeline  | dtype    | compile | end to end (s) | e2e / steps (s) | peak GPU GiB | ratio to diffusers |")
    print("|-----------|----------|---------|----------------|-----------------|--------------|--------------------|")
    for i in range(0, len(rows), 2):
        for r in rows[i : i + 2]:
            ratio = r[3] / rows[i + 1][3]
            print(
                f"| {r[0]:9s} | {r[1]:8s} | {str(r[2]):7s} | {r[3]:14.2f} | {r[4]:15.3f} | {r[5]:12.2f} | {ratio:18.2f} |"
            )


if __name__ == "__main__":
    main()
