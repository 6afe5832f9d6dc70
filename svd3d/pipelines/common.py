"""What both pipelines share: argument checks, loading and placing the model (with optional offload), the UNet
call, encode -> sample -> decode (`encode_sample_decode`), numerical-health and memory checks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from svd3d import signals
from svd3d.core.clip import encode_clip
from svd3d.core.conditioning import Conditioning
from svd3d.core.guidance import guidance_scales, guided_denoiser
from svd3d.core.sampling import initial_latents, karras_sigmas, sample_euler
from svd3d.core.vae import decode_latents, encode_condition, latent_factor
from svd3d.devices import device_memory
from svd3d.errors import SVD3DError
from svd3d.models import RELEASED_WIDTHS, SVDModel, Widths, check_kind, load_model, model_widths
from svd3d.models.attention import use_single_key_cross_attention
from svd3d.models.lora import LORA_MODES
from svd3d.models.registry import DEFAULT_MODELS, default_model
from svd3d.runinfo import Timer

log = logging.getLogger(__name__)


def check_positive(name: str, value, flag: str) -> None:
    if value is not None and value <= 0:
        raise SVD3DError(f"{name} must be a positive number, got {value}; set {flag} to 1 or more")


def check_lora_mode(mode: str) -> None:
    if mode not in LORA_MODES:
        raise SVD3DError(f"--lora-mode must be fuse or separate, got {mode!r}")


def check_guidance(min_guidance, max_guidance) -> None:
    for name, value in (("min guidance", min_guidance), ("max guidance", max_guidance)):
        if value is not None and not 0.0 <= value <= 50.0:
            raise SVD3DError(f"{name} must be in [0, 50], got {value}")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded."""
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def decoded_to_frames(video: torch.Tensor) -> np.ndarray:
    """Decoder output (T, 3, H, W) in about [-1, 1] -> (T, H, W, 3) float32 in [0, 1]."""
    return ((video.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


@contextlib.contextmanager
def placed(module: torch.nn.Module, device: torch.device, offload: bool) -> Iterator[torch.nn.Module]:
    """Run `module` on `device`; with offload, move it there for the block only and back to the CPU after, so
    only one network occupies accelerator memory at a time."""
    if offload and device.type != "cpu":
        module.to(device)
        try:
            yield module
        finally:
            module.to("cpu")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    else:
        yield module


def unet_network(unet: torch.nn.Module):
    """Adapt the UNet to the denoiser's Network signature, running it in its own dtype, returning float32."""

    def net(x_in: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        dtype = unet.dtype
        out = unet(
            x_in.to(dtype),
            c_noise.to(x_in.device),
            encoder_hidden_states=cond.clip_embeds.to(dtype),
            added_time_ids=cond.vector.to(x_in.device),
            return_dict=False,
        )[0]
        return out.float()

    return net


def ready_model(model, kind: str, dtype: torch.dtype, device: torch.device, offload: bool, config=None):
    """Load `model` (a name / path / hub id, the bundled default when None, or an SVDModel as is), check it can run
    `kind` ('video' or 'orbit'), and place it: on `device`, or left on the CPU when offloading."""
    if not isinstance(model, SVDModel):
        model = load_model(model or default_model(kind), dtype=dtype, config=config)
    check_kind(model, kind)
    use_single_key_cross_attention(model.unet)  # the same outputs, less work (svd3d.models.attention)
    if dtype == torch.float16:
        model.vae.to(torch.float32)  # fp16 VAEs overflow into black frames; the VAE is small
    if not offload:
        model.to(device)
    return model


def encode_sample_decode(
    model: SVDModel,
    pixels: torch.Tensor,
    vector: torch.Tensor,
    *,
    cond_aug: float,
    steps: int,
    min_guidance: float,
    max_guidance: float,
    decode_chunk: int,
    seed: int,
    offload: bool,
    timer: Timer,
    progress: bool,
    what: str = "frames",
) -> np.ndarray:
    """The diffusion at the heart of both pipelines: the conditioning image `pixels` (1, 3, H, W) in [-1, 1], on
    the device) and the per-frame `vector` (1, T, F) (svd3d.core.vectors) -> T frames (T, H, W, 3) float32 in
    [0, 1], in the model's frame order. `what` names the frames in messages ("frames", "views").

    Noise is drawn on the CPU from `seed`, first the conditioning image's, then the latents' (as diffusers does),
    so a seed gives the same frames on any device. Each stage is timed under timer("encode" / "sample" /
    "decode") and checked for NaN / Inf before the next."""
    dev, frames = pixels.device, vector.shape[1]
    generator = torch.Generator("cpu").manual_seed(seed)
    aug_noise = torch.randn(pixels.shape, generator=generator).to(dev)

    # 1. encode: CLIP sees the clean image; the VAE sees it with cond_aug noise
    with timer("encode"), torch.no_grad():
        with placed(model.image_encoder, dev, offload):
            clip_embeds = encode_clip(model.image_encoder, pixels).float()  # (1, 1, D)
        with placed(model.vae, dev, offload):
            concat = encode_condition(model.vae, pixels + cond_aug * aug_noise).float()  # (1, 4, h, w)
    check_finite(clip_embeds, "encoding the image with CLIP produced a non-finite embedding", model.image_encoder)
    check_finite(concat, "encoding the image with the VAE produced a non-finite latent", model.vae)
    cond = Conditioning(clip_embeds, concat, vector.to(dev))

    # 2. noise levels, initial latents, per-frame guidance (the model's schedule: linear or triangle)
    info = model.info
    sigmas = karras_sigmas(steps, info.sigma_min, info.sigma_max).to(dev)
    factor = latent_factor(model.vae)
    latent_shape = (1, frames, model.vae.config.latent_channels, pixels.shape[-2] // factor, pixels.shape[-1] // factor)
    x = initial_latents(torch.randn(latent_shape, generator=generator), sigmas[0]).to(dev)
    scales = guidance_scales(info.guidance, frames, min_guidance, max_guidance).to(dev)

    # 3. sample
    with timer("sample"), placed(model.unet, dev, offload):
        denoise = guided_denoiser(unet_network(model.unet), cond, scales)
        with tqdm(total=steps, desc="sampling", unit="step", disable=not progress) as bar:
            latents = sample_euler(denoise, x, sigmas, callback=checked_steps(bar, model.unet, steps))

    # 4. decode in chunks of frames
    with timer("decode"), placed(model.vae, dev, offload):
        decoded = decode_latents(model.vae, latents, model.scaling_factor, decode_chunk)[0]  # (T, 3, H, W)
    check_finite(decoded, f"decoding produced non-finite {what}", model.vae)
    return decoded_to_frames(decoded)


# ---------------------------------------------------------------------------------------------------------------
# Numerical health: a model with NaN weights (or a float16 overflow) makes black frames; stop before any is written.
# ---------------------------------------------------------------------------------------------------------------


NETWORK_NAMES = {  # how messages name the networks
    "PerFrameUNet": "UNet",
    "AutoencoderKLTemporalDecoder": "VAE",
    "AutoencoderKL": "VAE",
    "CLIPVisionModelWithProjection": "CLIP image encoder",
}


def check_finite(tensor: torch.Tensor, stage: str, network: torch.nn.Module) -> None:
    """Stop with the likely cause when `tensor`, what `network` just made, holds NaN or Inf.

    stage starts the message, e.g. "sampling produced non-finite latents at step 3 of 25". The weights are
    scanned only once something went wrong: corrupt weights are named, else float16 overflow is the usual cause.
    """
    if bool(torch.isfinite(tensor).all()):
        return
    name = NETWORK_NAMES.get(type(network).__name__, type(network).__name__)
    bad = next((key for key, p in network.named_parameters() if not bool(torch.isfinite(p).all())), None)
    dtype = next(network.parameters()).dtype
    if bad is not None:
        cause = f"the {name}'s weights hold NaN/Inf (first: {bad}): the model is corrupt; re-download or re-export it"
    elif dtype == torch.float16:
        cause = f"the {name} overflowed in float16; rerun with --dtype float32 (or bfloat16)"
    elif dtype == torch.bfloat16:
        cause = f"the {name} overflowed in bfloat16; rerun with --dtype float32"
    else:
        cause = f"the {name} overflowed in {str(dtype).removeprefix('torch.')}, so its weights hold extreme values: "
        cause += "the model is corrupt or badly trained; re-download or re-export it"
    raise SVD3DError(f"{stage} (NaN/Inf): {cause}")


def checked_steps(bar, unet: torch.nn.Module, steps: int) -> Callable[[int, torch.Tensor, torch.Tensor], None]:
    """The sampler's callback: advance the progress bar; stop at the first step whose result is not finite, or that
    follows a Ctrl-C a library swallowed (svd3d.signals)."""

    def callback(i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        signals.check()
        bar.update()
        check_finite(denoised, f"sampling produced non-finite latents at step {i + 1} of {steps}", unet)

    return callback


# ---------------------------------------------------------------------------------------------------------------
# Memory: refuse a job that cannot fit before anything big is loaded or allocated.
# ---------------------------------------------------------------------------------------------------------------

# The least a job must hold at its peak, in activation maps (weights come on top). Decoding peaks at full
# resolution: the decoder's last upsampling convolution holds its input (upsampled to full resolution) and its
# output at once, 2 maps of Widths.decoder channels (256 in the released models) for each frame decoded together.
# The check refuses only what cannot fit; above the typical peak below, it warns.
DECODER_MAPS = 2
# Sampling peaks at latent resolution, for every frame and both guidance branches: the skip connections the UNet
# keeps (about 5.5 maps of its first block's width) and its finest up-block's resnet, whose input is 3 maps wide
# (skip + upsampled), together with the normalised copy of it.
UNET_MAPS = 12
# The real peak over the least: SVD's temporal VAE decoding 2 frames at 256x256 on the CPU (torch 2.13, float32)
# peaked at 0.83 GB over its inputs, 6.2 maps of 256 channels per frame against DECODER_MAPS = 2 (convolution
# workspaces, the temporal blocks' reshaped copies, normalised copies). Assumed alike for the UNet.
TYPICAL_OVER_LEAST = 3


def peak_memory(
    frames: int,
    width: int,
    height: int,
    decode_chunk: int,
    dtype: torch.dtype,
    widths: Widths | None = None,
    guided: bool = True,
) -> dict[str, int]:
    """The least memory, in bytes, a job's activations need at the peak of each stage: {"sampling", "decoding"}.

    widths: svd3d.models.Widths (default: the released models'). A float16 job decodes in float32 (ready_model
    upcasts the VAE). guided: two UNet branches (classifier-free guidance) per step."""
    widths = widths or RELEASED_WIDTHS
    unet_bytes = torch.empty(0, dtype=dtype).element_size()
    vae_bytes = 4 if dtype == torch.float16 else unet_bytes
    cells = (width // widths.latent_factor) * (height // widths.latent_factor)
    return {
        "sampling": (2 if guided else 1) * frames * cells * widths.unet * UNET_MAPS * unet_bytes,
        "decoding": min(decode_chunk, frames) * width * height * widths.decoder * DECODER_MAPS * vae_bytes,
    }


def check_memory(
    model,
    kind: str,
    size: tuple[int, int] | None,
    frames: int | None,
    decode_chunk: int | None,
    dtype: torch.dtype,
    device: torch.device,
    *,
    early: bool = False,
) -> None:
    """Refuse a job whose activations alone cannot fit in `device`'s memory, naming the estimate and the fix; log a
    warning when the typical peak (TYPICAL_OVER_LEAST times the least) does not fit.

    early: called before the model is loaded, so only refuse, counting unknown frames as 1 and one guidance
    branch, the least the job can be. `model` may be what the caller named: its widths are read from a bundled or
    diffusers folder's config files, else the released models' are assumed. size None: nothing to check yet."""
    have = device_memory(device)
    if size is None or have is None:
        return
    width, height = size
    frames = frames or 1
    chunk = min(decode_chunk or 14, frames)
    widths = model_widths(model if model is not None else DEFAULT_MODELS[kind])
    need = peak_memory(frames, width, height, chunk, dtype, widths, guided=not early)
    stage = max(need, key=need.get)
    if need[stage] * (1 if early else TYPICAL_OVER_LEAST) <= have:
        return
    # the largest decode chunk whose typical peak fits, when decoding is what does not
    per_frame = need["decoding"] // chunk
    fitting_chunk = int(have // (per_frame * TYPICAL_OVER_LEAST))
    if stage == "decoding" and need["sampling"] <= have and 1 <= fitting_chunk < chunk:
        fix = f"--decode-chunk {fitting_chunk} (or a smaller --size)"
    else:
        fix = "a smaller --size" + (" or fewer --frames" if frames > 1 else "")
    job = f"{frames} frames at {width}x{height}" if frames > 1 else f"one frame at {width}x{height}"
    latent = f"{width // widths.latent_factor}x{height // widths.latent_factor}"
    where = {
        "decoding": f"the VAE decoder at full resolution, {chunk} frame(s) at once",
        "sampling": f"the UNet on {frames} frame(s) of {latent} latents",
    }[stage]
    machine = "this machine has" if device.type in ("cpu", "mps") else f"the GPU ({device}) has"
    if need[stage] <= have:
        log.warning(
            "%s typically needs about %.1f GB of memory (%s), more than the %.1f GB %s; if it runs out, use %s",
            job, need[stage] * TYPICAL_OVER_LEAST / 1e9, where, have / 1e9, machine, fix,
        )  # fmt: skip
        return
    raise SVD3DError(
        f"{job} needs at least {need[stage] / 1e9:,.1f} GB of memory ({where}), more than the "
        f"{have / 1e9:,.1f} GB {machine}; use {fix}"
    )


def warn_far_from_training(info, width: int, height: int, frames: int) -> None:
    """Log a warning when the size or frame count is far (more than 2x, or less than half) from the model's own."""
    sides = ((width, info.width), (height, info.height))
    if all(own / 2 <= side <= own * 2 for side, own in sides) and frames <= 2 * info.num_frames:
        return
    log.warning(
        "%s was trained at %dx%d with %d frames; %dx%d with %d frames is far from that, expect poor results",
        info.name, info.width, info.height, info.num_frames, width, height, frames,
    )  # fmt: skip
