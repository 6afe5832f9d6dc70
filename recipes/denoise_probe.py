"""Where does an orbit model lose? A one-step denoising probe, per noise level.

For each object: encode its ground-truth views (model frame order) to latents x0, draw one noise n, and denoise
x0 + sigma n in one step with the object's own conditioning (input view + cameras) and, as a control, with the next
object's input view. Decode and score PSNR against the ground-truth views (input view excluded). No guidance.

Reading it: at small sigma the views are almost given, so the score approaches the VAE's reconstruction. At large
sigma almost nothing of the views is left, so D is the model's best guess of the views from the input image and
cameras alone: the better the model knows the object's other sides, the higher that row; where own and other
input score alike, the model ignores its input there.

    python recipes/denoise_probe.py runs/tiny-orbit/model --data runs/tiny-orbit/held_out
    python recipes/denoise_probe.py runs/tiny-orbit/model --data runs/tiny-orbit/data --train-split 64 1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from svd3d.cameras import model_order
from svd3d.core.clip import encode_clip
from svd3d.core.conditioning import Conditioning
from svd3d.core.denoiser import denoise_vpred
from svd3d.core.vae import decode_latents, encode_condition
from svd3d.core.vectors import orbit_vector
from svd3d.image_metrics import psnr
from svd3d.models import load_model
from svd3d.pipelines.common import decoded_to_frames, unet_network
from svd3d.training.data import OrbitData
from svd3d.training.loop import frames_tensor

SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0)


@torch.no_grad()
def probe(model, data: OrbitData, sigmas=SIGMAS, seed: int = 0) -> dict[str, list[float]]:
    """Mean PSNR (dB) of one-step denoised views per sigma, with own and with another object's input; and the VAE
    reconstruction of the same views ('vae')."""
    model.unet.eval()
    model.vae.eval()
    n, frames, size = len(data), data.frames.shape[1], data.frames.shape[2]
    perm = model_order(frames, model.info.frame_order)
    scored = perm != 0  # the input view is not a novel view
    names, scale, net = model.unet.vector_names, model.scaling_factor, unet_network(model.unet)
    g = torch.Generator().manual_seed(seed)
    inputs = [frames_tensor(data.frames[i, :1], size) for i in range(n)]
    conds = [
        (
            encode_clip(model.image_encoder, x).float(),
            encode_condition(model.vae, x + model.info.cond_aug * torch.randn(x.shape, generator=g)).float(),
        )
        for x in inputs
    ]

    def decode(z: torch.Tensor) -> np.ndarray:
        return decoded_to_frames(decode_latents(model.vae, z, scale, frames)[0])[scored]

    own, other, vae = [[] for _ in sigmas], [[] for _ in sigmas], []
    for i in range(n):
        truth = np.asarray(data.frames[i], np.float32)[perm][scored] / 255.0
        x0 = (model.vae.encode(frames_tensor(data.frames[i], size)[perm]).latent_dist.mode() * scale)[None]
        vae.append(psnr(decode(x0), truth))
        vector = orbit_vector(
            names, data.elevations[i], data.azimuths[i], perm, model.info.cond_aug, model.info.azimuth_sign
        )
        noise = torch.randn(x0.shape, generator=g)
        for rows, j in ((own, i), (other, (i + 1) % n)):
            cond = Conditioning(conds[j][0], conds[j][1], vector[None])
            for k, sigma in enumerate(sigmas):
                denoised = denoise_vpred(net, x0 + sigma * noise, torch.tensor(sigma), cond)
                rows[k].append(psnr(decode(denoised), truth))
    return {
        "vae": [float(np.mean(vae))],
        "own": [float(np.mean(r)) for r in own],
        "other": [float(np.mean(r)) for r in other],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an orbit model (folder, bundled name)")
    parser.add_argument("--data", required=True, help="an orbit dataset folder (e.g. RUN/held_out)")
    parser.add_argument("--objects", type=int, default=8, help="samples probed (every other one: static orbits first)")
    parser.add_argument("--train-split", nargs=2, type=int, metavar=("HELD_OUT", "SEED"),
                        help="probe the training split of --data (the recipe's data.held_out and data.seed)")  # fmt: skip
    args = parser.parse_args()
    data = OrbitData.load(args.data)
    if args.train_split:
        data, _ = data.split(*args.train_split)
    data = data.subset(list(range(0, min(2 * args.objects, len(data)), 2)))
    result = probe(load_model(args.model), data)
    print(f"{len(data)} samples of {args.data}; VAE reconstruction of the views: {result['vae'][0]:.2f} dB")
    print("| sigma | own input (dB) | another object's input (dB) |\n|---|---|---|")
    for sigma, a, b in zip(SIGMAS, result["own"], result["other"], strict=True):
        print(f"| {sigma:g} | {a:.2f} | {b:.2f} |")


if __name__ == "__main__":
    main()
