"""Print svd3d's max-abs error against the sgm reference fixtures, tensor by tensor, beside the fixture tolerances.

python benchmarks/parity_report.py [--fixtures ../shared/fixtures/sgm]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from svd3d.core import Conditioning, guidance_scales, guided_denoiser, initial_latents, karras_sigmas, sample_euler
from svd3d.core.clip import encode_clip
from svd3d.core.vae import decode_latents, encode_condition
from svd3d.models import load_model
from svd3d.pipelines.common import unet_network


def report(folder: Path, variant: str) -> list[tuple[str, float, float]]:
    model = load_model(folder / f"{variant}.safetensors")
    io = {k: v.clone() for k, v in load_file(str(folder / f"{variant}_io.safetensors")).items()}
    tol = json.loads((folder / f"{variant}_io.json").read_text())["suggested_tolerances_max_abs"]
    spec = json.loads((folder / f"{variant}_io.json").read_text())["tests"]["sample"]
    names = model.unet.vector_names
    aug = 0.02 if model.info.kind == "video" else 1e-5
    rows = []

    def add(key, ours, ref, limit):
        rows.append((key, (ours.float() - ref.float()).abs().max().item(), limit))

    B, T = io["unet.image_only_indicator"].shape
    values = torch.stack([io[f"unet.value.{n}"] for n in names], -1)
    add("unet.y (vector)", model.unet.embed_vector(values), io["unet.y"], tol["cond.c.vector"])
    with torch.no_grad():
        out = model.unet(
            io["unet.x"].reshape(B, T, *io["unet.x"].shape[1:]),
            io["unet.timesteps"].reshape(B, T)[:, 0],
            io["unet.context"].reshape(B, T, 1, -1)[:, 0],
            values.reshape(B, T, -1),
        ).sample.flatten(0, 1)
        add("unet.out", out, io["unet.out"], tol["unet.out"])
        image = io["cond.image_u8"].float() / 255 * 2 - 1
        clip = encode_clip(model.image_encoder, image)
        concat = encode_condition(model.vae, image + aug * io["cond.cond_aug_noise"])
        add("cond.c.crossattn", clip, io["cond.c.crossattn"], tol["cond.c.crossattn"])
        add("cond.c.concat", concat, io["cond.c.concat"], tol["cond.c.concat"])
        wide = io["cond_aa.image_u8"].float() / 255 * 2 - 1
        add(
            "cond_aa.c.crossattn",
            encode_clip(model.image_encoder, wide),
            io["cond_aa.c.crossattn"],
            tol["cond_aa.c.crossattn"],
        )
        z = io["decode.z"][None]
        add(
            "decode.out",
            decode_latents(model.vae, z, model.scaling_factor, z.shape[1])[0],
            io["decode.out"],
            tol["decode.out"],
        )
    batch = torch.stack([io[f"cond.batch.{n}"].double() for n in names], -1).float()
    cond = Conditioning(clip, concat, batch[None])
    sigmas = karras_sigmas(spec["num_steps"], 0.002, spec["discretization"]["sigma_max"])
    scales = guidance_scales(model.info.guidance, spec["T"], model.info.min_guidance, model.info.max_guidance)
    seen = {}
    latents = sample_euler(
        guided_denoiser(unet_network(model.unet), cond, scales),
        initial_latents(io["sample.randn"][None], sigmas[0]),
        sigmas,
        callback=lambda i, x, d: seen.setdefault(i, d[0].clone()),
    )
    add("sample.step0.denoised", seen[0], io["sample.step0.denoised"], tol["sample.step0.denoised"])
    add("sample.latents", latents[0], io["sample.latents"], tol["sample.latents"])
    decoded = decode_latents(model.vae, latents, model.scaling_factor, 14)[0]
    if "sample.decoded_idx" in io:
        decoded = decoded[io["sample.decoded_idx"]]
    add("sample.decoded", decoded, io["sample.decoded"], tol["sample.decoded"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("SVD3D_SGM_FIXTURES", Path(__file__).resolve().parents[2] / "shared/fixtures/sgm")
    parser.add_argument("--fixtures", type=Path, default=Path(default))
    args = parser.parse_args()
    print("| variant | tensor | max abs error | tolerance | ok |")
    print("|---|---|---|---|---|")
    for variant in ("svd", "svd_xt", "sv3d_u", "sv3d_p"):
        for key, err, limit in report(args.fixtures, variant):
            print(f"| {variant} | {key} | {err:.2e} | {limit:.0e} | {'yes' if err <= limit else 'NO'} |")


if __name__ == "__main__":
    main()
