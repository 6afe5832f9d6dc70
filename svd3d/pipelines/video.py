"""Image -> video with SVD / SVD-XT semantics, as one unrolled function."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from svd3d import media, outputs
from svd3d.core.clip import encode_clip
from svd3d.core.conditioning import Conditioning
from svd3d.core.guidance import guidance_scales, guided_denoiser
from svd3d.core.sampling import initial_latents, karras_sigmas, sample_euler
from svd3d.core.vae import decode_latents, encode_condition, latent_factor
from svd3d.core.vectors import video_vector
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.image import check_size, composite_on_white, fit_cover, load_image, to_tensor
from svd3d.models import SVDModel
from svd3d.pipelines.common import (
    check_finite,
    check_guidance,
    check_memory,
    check_positive,
    checked_steps,
    decoded_to_frames,
    placed,
    ready_model,
    to_uint8,
    unet_network,
    warn_far_from_training,
)
from svd3d.runinfo import Timer, command_line, input_record, model_record, versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSettings:
    """Every choice that shapes a clip, resolved from the model's defaults and the caller's overrides."""

    num_frames: int
    num_steps: int
    fps: int  # the model is conditioned on fps - 1 (REFERENCE §3)
    motion_bucket_id: int
    noise_aug: float  # cond_aug: noise added to the conditioning image
    min_guidance: float
    max_guidance: float
    guidance: str
    width: int
    height: int
    decode_chunk: int
    seed: int
    dtype: str
    device: str
    forward_chunking: bool
    offload: bool


@dataclass
class VideoResult:
    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    settings: VideoSettings
    timings: dict[str, float]
    output: Path | None
    run: dict  # what run.json holds

    def frames_uint8(self) -> np.ndarray:
        return to_uint8(self.frames)


def check_video_args(frames, steps, fps, motion_bucket, noise_aug, min_guidance, max_guidance, decode_chunk, size):
    """All argument checks, before any model is loaded or any file is written."""
    check_positive("frames", frames, "--frames")
    check_positive("steps", steps, "--steps")
    check_positive("fps", fps, "--fps")
    check_positive("decode chunk", decode_chunk, "--decode-chunk")
    if motion_bucket is not None and not 0 <= motion_bucket <= 1023:
        raise SVD3DError(
            f"motion bucket must be in 0..1023 (SVD was trained on 0..255, default 127), got {motion_bucket}"
        )
    if noise_aug is not None and not 0.0 <= noise_aug <= 10.0:
        raise SVD3DError(f"noise augmentation must be in [0, 10] (default 0.02), got {noise_aug}")
    check_guidance(min_guidance, max_guidance)
    if size is not None:
        check_size(*size)


@outputs.holds_output(lambda args: args["output"])
def generate_video(
    image: str | Path | Image.Image,
    *,
    model: str | Path | SVDModel | None = None,
    frames: int | None = None,
    steps: int | None = None,
    fps: int | None = None,
    motion_bucket: int | None = None,
    noise_aug: float | None = None,
    min_guidance: float | None = None,
    max_guidance: float | None = None,
    seed: int = 23,
    size: tuple[int, int] | None = None,
    decode_chunk: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
    forward_chunking: bool = False,
    offload: bool = False,
    output: str | Path | None = None,
    config: str | Path | None = None,
    progress: bool = True,
) -> VideoResult:
    """Animate one image with an SVD-family model. Unset options take the model's defaults (REFERENCE §1).

    The image is resized to cover the model's size (or `size`, WxH) keeping its aspect ratio and centre-cropped;
    transparency is composited on white. Noise is drawn on the CPU from `seed` (first the conditioning-image noise,
    then the latents, as diffusers does), so a seed gives the same clip on any device.
    """
    timer = Timer()

    # 1. check inputs: everything that can be wrong is reported before any work or output
    check_video_args(frames, steps, fps, motion_bucket, noise_aug, min_guidance, max_guidance, decode_chunk, size)
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        check_video_output(out_path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    check_memory(model, "video", size, frames, decode_chunk, torch_dtype, dev, early=True)
    pil = load_image(image) if not isinstance(image, Image.Image) else image

    # 2. load the model (CPU, cast at load), check it is a video model, place it
    with timer("load"):
        model = ready_model(model, "video", torch_dtype, dev, offload, config)
        if forward_chunking:
            model.unet.enable_forward_chunking()
    info = model.info
    width, height = size or (info.width, info.height)
    settings = VideoSettings(
        num_frames=frames or info.num_frames,
        num_steps=steps or info.num_steps,
        fps=fps or info.fps,
        motion_bucket_id=info.motion_bucket_id if motion_bucket is None else motion_bucket,
        noise_aug=info.cond_aug if noise_aug is None else noise_aug,
        min_guidance=info.min_guidance if min_guidance is None else min_guidance,
        max_guidance=info.max_guidance if max_guidance is None else max_guidance,
        guidance=info.guidance,
        width=width,
        height=height,
        decode_chunk=decode_chunk or min(frames or info.num_frames, 14),
        seed=seed,
        dtype=str(torch_dtype).removeprefix("torch."),
        device=str(dev),
        forward_chunking=forward_chunking,
        offload=offload,
    )
    T, steps_n = settings.num_frames, settings.num_steps
    log.info(
        "video: %s, %d frames at %dx%d, %d steps, %s on %s", info.name, T, width, height, steps_n, settings.dtype, dev
    )
    check_memory(model, "video", (width, height), T, settings.decode_chunk, torch_dtype, dev)
    warn_far_from_training(info, width, height, T)

    # 3. prepare the image: transparency on white, cover-resize and centre-crop to the model size
    fitted = fit_cover(composite_on_white(pil), width, height)
    pixels = to_tensor(fitted).to(dev)  # (1, 3, H, W) in [-1, 1]
    generator = torch.Generator("cpu").manual_seed(seed)
    aug_noise = torch.randn(pixels.shape, generator=generator).to(dev)

    # 4. encode: CLIP sees the clean image; the VAE sees it with noise augmentation
    with timer("encode"), torch.no_grad():
        with placed(model.image_encoder, dev, offload):
            clip_embeds = encode_clip(model.image_encoder, pixels).float()  # (1, 1, D)
        with placed(model.vae, dev, offload):
            concat = encode_condition(model.vae, pixels + settings.noise_aug * aug_noise).float()  # (1, 4, h, w)
    check_finite(clip_embeds, "encoding the image with CLIP produced a non-finite embedding", model.image_encoder)
    check_finite(concat, "encoding the image with the VAE produced a non-finite latent", model.vae)

    # 5. per-frame vector: fps - 1, motion bucket, noise augmentation (the same for every frame of a clip)
    vector = video_vector(model.unet.vector_names, settings.fps, settings.motion_bucket_id, settings.noise_aug, T)
    cond = Conditioning(clip_embeds, concat, vector.to(dev))  # vector (1, T, 3)

    # 6. noise levels, initial latents, per-frame guidance
    sigmas = karras_sigmas(steps_n, info.sigma_min, info.sigma_max).to(dev)
    latent_shape = (
        1,
        T,
        model.vae.config.latent_channels,
        height // latent_factor(model.vae),
        width // latent_factor(model.vae),
    )
    x = initial_latents(torch.randn(latent_shape, generator=generator), sigmas[0]).to(dev)
    scales = guidance_scales(settings.guidance, T, settings.min_guidance, settings.max_guidance).to(dev)

    # 7. sample
    with timer("sample"), placed(model.unet, dev, offload):
        denoise = guided_denoiser(unet_network(model.unet), cond, scales)
        with tqdm(total=steps_n, desc="sampling", unit="step", disable=not progress) as bar:
            latents = sample_euler(denoise, x, sigmas, callback=checked_steps(bar, model.unet, steps_n))

    # 8. decode in chunks of frames
    with timer("decode"), placed(model.vae, dev, offload):
        video = decode_latents(model.vae, latents, model.scaling_factor, settings.decode_chunk)  # (1, T, 3, H, W)
    check_finite(video, "decoding produced non-finite frames", model.vae)
    frames_np = decoded_to_frames(video[0])

    # 9. write the clip and run.json (staged, then renamed into place together)
    run = {
        "written_by": "svd3d video",
        "job": "video",
        "command": command_line(),
        "input": input_record(image),
        "model": model_record(model),
        "settings": asdict(settings),
        "versions": versions(),
    }
    if out_path is not None:
        write_video_output(to_uint8(frames_np), settings.fps, out_path, run, timer)
    run["timings_s"] = dict(timer.seconds)
    return VideoResult(frames_np, settings, dict(timer.seconds), out_path, run)


def run_json_path(out: Path) -> Path:
    """run.json beside the output: inside a frames folder, or `<name>.run.json` next to a video file."""
    return out / "run.json" if media.output_format(out) == "frames" else out.with_name(out.stem + ".run.json")


def check_video_output(out: Path) -> None:
    """The clip's output may be written: a free or svd3d-owned frames folder, or a clip file that is absent or
    svd3d's own (its run.json records its hash). Checked before any work."""
    if media.output_format(out) == "frames":
        outputs.check_replaceable(out)
    else:
        outputs.check_file_replaceable(out, run_json_path(out))


def write_video_output(frames: np.ndarray, fps: int, out: Path, run: dict, timer: Timer) -> None:
    """Write the clip and its run.json together: a frames folder staged and swapped in whole, or the clip file and
    `<name>.run.json` (holding the clip's hash, which marks it as svd3d's) renamed into place together."""
    run["output"] = str(out)
    if media.output_format(out) == "frames":
        with outputs.replacing(out, "video") as tmp:
            with timer("write"):
                media.write_frames_png(frames, tmp)
            media.write_json(tmp / "run.json", {**run, "timings_s": dict(timer.seconds)})
        return
    with outputs.replacing_files([out, run_json_path(out)]) as (clip, record):
        with timer("write"):
            media.write_video(frames, clip, fps=fps)
        run["output_sha256"] = outputs.fingerprint(clip)["sha256"]
        record.write_text(json.dumps({**run, "timings_s": dict(timer.seconds)}, indent=2, default=str) + "\n")
