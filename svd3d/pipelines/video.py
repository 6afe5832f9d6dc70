"""Image -> video with SVD / SVD-XT semantics, as one unrolled function."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from svd3d import defaults, media, outputs, viewer
from svd3d.core.vectors import video_vector
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.image import check_size, composite_on_white, fit_cover, load_image, to_tensor
from svd3d.models import SVDModel
from svd3d.models.lora import applied_adapters, check_adapters_fit, read_adapters
from svd3d.pipelines.common import (
    check_guidance,
    check_lora_mode,
    check_memory,
    check_positive,
    encode_sample_decode,
    ready_model,
    to_uint8,
    warn_far_from_training,
)
from svd3d.pipelines.text import text_request, text_to_image
from svd3d.runinfo import Timer, command_line, input_record, model_record, versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSettings:
    """Every choice that shapes a clip, resolved from the model's defaults and the caller's overrides."""

    num_frames: int
    num_steps: int
    fps: int  # the model is conditioned on fps - 1 (svd3d.core.vectors)
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
    lora_mode: str  # how --lora adapters are applied: fuse or separate (run.json's "loras" lists them)


@dataclass
class VideoResult:
    frames: np.ndarray  # (T, H, W, 3) float32 in [0, 1]
    settings: VideoSettings
    timings: dict[str, float]
    output: Path | None
    run: dict  # what run.json holds
    prompt_image: Image.Image | None = None  # the image made from the prompt (before preprocessing), if any

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
    image: str | Path | Image.Image | None = None,
    *,
    prompt: str | None = None,
    t2i_model: str | Path | None = None,
    t2i_steps: int | None = defaults.T2I_STEPS,
    t2i_guidance: float | None = defaults.T2I_GUIDANCE,
    t2i_size: tuple[int, int] | None = defaults.T2I_SIZE,
    t2i_suffix: str = defaults.T2I_VIDEO_SUFFIX,
    model: str | Path | SVDModel | None = None,
    frames: int | None = None,
    steps: int | None = None,
    fps: int | None = None,
    motion_bucket: int | None = None,
    noise_aug: float | None = None,
    min_guidance: float | None = None,
    max_guidance: float | None = None,
    seed: int = defaults.SEED,
    size: tuple[int, int] | None = None,
    decode_chunk: int | None = None,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    forward_chunking: bool = False,
    offload: bool = False,
    output: str | Path | None = None,
    config: str | Path | None = None,
    loras: Sequence = (),
    lora_mode: str = defaults.LORA_MODE,
    progress: bool = True,
) -> VideoResult:
    """Animate one image with an SVD-family model. Unset options take the model's defaults (its ModelInfo).

    Instead of an image, a `prompt` and a diffusers text-to-image model `t2i_model` (folder or hub id) make the
    image first (svd3d.pipelines.text: `t2i_suffix` appended to the prompt, `t2i_steps`, `t2i_guidance` and
    `t2i_size` [width, height] defaulting to the pipeline's own, seeded with `seed`); it is written beside the
    output (`<name>.prompt.png`, or prompt.png in a frames folder) and the job goes on as from that image.

    The image is resized to cover the model's size (or `size`, WxH) keeping its aspect ratio and centre-cropped;
    transparency is composited on white. Noise is drawn on the CPU from `seed` (first the conditioning-image noise,
    then the latents, as diffusers does), so a seed gives the same clip on any device.

    `loras`: LoRA adapters (svd3d.models.lora), each (path or bundled name, scale), a bare path (scale 1) or
    "PATH:SCALE"; `lora_mode` "fuse" adds them into the weights for the job, "separate" runs them beside the weights.
    A model passed in is the base model again when the call returns.
    """
    timer = Timer()

    # 1. check inputs: everything that can be wrong is reported before any work or output
    text = text_request(image, prompt, t2i_model, t2i_steps, t2i_guidance, t2i_size, t2i_suffix)  # None: an image
    check_video_args(frames, steps, fps, motion_bucket, noise_aug, min_guidance, max_guidance, decode_chunk, size)
    check_lora_mode(lora_mode)
    adapters = read_adapters(loras)
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        check_video_output(out_path, prompt_image=text is not None)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    check_memory(model, "video", size, frames, decode_chunk, torch_dtype, dev, early=True)
    if text is None:
        pil = load_image(image) if not isinstance(image, Image.Image) else image

    # 2. load the model (CPU, cast at load), check it is a video model, place it
    with timer("load"):
        model = ready_model(model, "video", torch_dtype, dev, offload, config)
        if forward_chunking:
            model.unet.enable_forward_chunking()
    check_adapters_fit(model.unet, adapters, model.source)
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
        lora_mode=lora_mode,
    )
    T, steps_n = settings.num_frames, settings.num_steps
    log.info(
        "video: %s, %d frames at %dx%d, %d steps, %s on %s", info.name, T, width, height, steps_n, settings.dtype, dev
    )
    check_memory(model, "video", (width, height), T, settings.decode_chunk, torch_dtype, dev)
    warn_far_from_training(info, width, height, T)

    # 3. from a prompt: the text-to-image pipeline makes the image (loaded, run, freed again), seeded with `seed`
    made = None
    if text is not None:
        with timer("t2i"):
            made = text_to_image(text, seed=seed, device=dev, dtype=torch_dtype, offload=offload, progress=progress)
        pil = made.image

    # 4. prepare the image: transparency on white, cover-resize and centre-crop to the model size
    fitted = fit_cover(composite_on_white(pil), width, height)
    pixels = to_tensor(fitted).to(dev)  # (1, 3, H, W) in [-1, 1]

    # 5. per-frame vector: fps - 1, motion bucket, noise augmentation (the same for every frame of a clip)
    vector = video_vector(model.unet.vector_names, settings.fps, settings.motion_bucket_id, settings.noise_aug, T)

    # 6. encode (CLIP on the clean image, the VAE on it with noise augmentation), sample with the LoRA adapters
    #    applied to the UNet (undone after), decode in chunks
    with applied_adapters(model.unet, adapters, lora_mode, timer):
        frames_np = encode_sample_decode(
            model,
            pixels,
            vector,
            cond_aug=settings.noise_aug,
            steps=steps_n,
            min_guidance=settings.min_guidance,
            max_guidance=settings.max_guidance,
            decode_chunk=settings.decode_chunk,
            seed=seed,
            offload=offload,
            timer=timer,
            progress=progress,
        )

    # 7. write the clip and run.json (and the image made from the prompt): staged, renamed into place together
    prompt_file = media.prompt_image_path(out_path).name if made is not None and out_path is not None else None
    run = {
        "written_by": "svd3d video",
        "job": "video",
        "command": command_line(),
        "input": input_record(image) if made is None else made.input_record(prompt_file),
        "model": model_record(model),
        "loras": [a.to_record() for a in adapters],
        "settings": asdict(settings),
        "versions": versions(),
    }
    if out_path is not None:
        write_video_output(to_uint8(frames_np), settings.fps, out_path, run, timer,
                           prompt_png=made.png if made is not None else None)  # fmt: skip
    run["timings_s"] = dict(timer.seconds)
    prompt_image = made.image if made is not None else None
    return VideoResult(frames_np, settings, dict(timer.seconds), out_path, run, prompt_image)


# where run.json beside a clip file records the hash of the image made from the prompt (svd3d.outputs's key path;
# not "input.sha256", the hash of an input photo, which svd3d never replaces)
PROMPT_IMAGE_KEY = ("input", "image_sha256")


def check_video_output(out: Path, prompt_image: bool = False) -> None:
    """The clip's output may be written: a free or svd3d-owned frames folder, or a clip file that is absent or
    svd3d's own (its run.json records its hash), and with `prompt_image` the `<name>.prompt.png` beside it likewise.
    Checked before any work."""
    if media.output_format(out) == "frames":
        outputs.check_replaceable(out)
        return
    record = media.run_json_path(out)
    outputs.check_file_replaceable(out, record)
    if prompt_image:
        outputs.check_file_replaceable(media.prompt_image_path(out), record, PROMPT_IMAGE_KEY)


def write_video_output(
    frames: np.ndarray, fps: int, out: Path, run: dict, timer: Timer, prompt_png: bytes | None = None
) -> None:
    """Write the clip and its run.json together: a frames folder staged and swapped in whole, or the clip file and
    `<name>.run.json` (holding the clip's hash, which marks it as svd3d's) renamed into place together. `prompt_png`:
    the image made from the prompt, written with them (`media.prompt_image_path`)."""
    run["output"] = str(out)
    if media.output_format(out) == "frames":
        with outputs.replacing(out, "video") as tmp:
            with timer("write"):
                media.write_frames_png(frames, tmp)
                if prompt_png is not None:
                    (tmp / media.PROMPT_IMAGE).write_bytes(prompt_png)
            media.write_json(tmp / "run.json", {**run, "timings_s": dict(timer.seconds)})
            viewer.write_index(tmp, title=out.name)  # the frames played in turn, and the run's settings
        return
    record_path, image_path = media.run_json_path(out), media.prompt_image_path(out)
    # an image an earlier run made from its prompt, beside a clip this run replaces without one: it goes too
    stale = prompt_png is None and outputs.is_intact(image_path, record_path, PROMPT_IMAGE_KEY)
    paths = [out, record_path, *([image_path] if prompt_png is not None else [])]
    with outputs.replacing_files(paths) as (clip, record, *image):
        with timer("write"):
            media.write_video(frames, clip, fps=fps)
            if image:
                image[0].write_bytes(prompt_png)
        run["output_sha256"] = outputs.fingerprint(clip)["sha256"]
        record.write_text(json.dumps({**run, "timings_s": dict(timer.seconds)}, indent=2, default=str) + "\n")
    if stale:
        image_path.unlink(missing_ok=True)
