"""Image -> consistent views around the object with SV3D_u / SV3D_p, and their true cameras, as one unrolled
function. SV3D's conventions: per-frame cond_aug || polar || azimuth vectors (svd3d.core.vectors), triangle
guidance (svd3d.core.guidance), cond_aug 1e-5 (svd3d.models.info), CLIP on the clean image, the input-view frame
replaced by the input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from svd3d import defaults, media, outputs, viewer
from svd3d.cameras import CameraFrame, Intrinsics, build_orbit, model_order, orbit_c2w, write_transforms
from svd3d.core.vectors import orbit_vector
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.image import check_size, composite_on_white, load_image, mask_bbox, mask_from_white, to_tensor
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
from svd3d.segment import PreparedObject, prepare_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrbitSettings:
    orbit: str  # static | dynamic | custom
    num_frames: int
    num_steps: int
    min_guidance: float
    max_guidance: float
    cond_aug: float
    size: int
    object_fraction: float
    decode_chunk: int
    seed: int
    dtype: str
    device: str
    offload: bool
    lora_mode: str  # how LoRA adapters are applied: fuse or separate (run.json's "loras" lists them)


@dataclass
class OrbitResult:
    frames: np.ndarray  # (N, S, S, 3) float32 in [0, 1], svd3d order: 0 = input view, then increasing azimuth
    elevations: np.ndarray  # (N,) degrees
    azimuths: np.ndarray  # (N,) degrees
    c2w: np.ndarray  # (N, 4, 4) OpenGL camera-to-world
    intrinsics: Intrinsics
    input_image: Image.Image  # the conditioning image after preprocessing
    mask: np.ndarray  # (S, S) float32 foreground of the input image
    settings: OrbitSettings
    timings: dict[str, float]
    output: Path | None
    run: dict
    prompt_image: Image.Image | None = None  # the image made from the prompt (before preprocessing), if any


@outputs.holds_output(lambda args: args["output"])
def generate_orbit(
    image: str | Path | Image.Image | None = None,
    *,
    prompt: str | None = None,
    t2i_model: str | Path | None = None,
    t2i_steps: int | None = defaults.T2I_STEPS,
    t2i_guidance: float | None = defaults.T2I_GUIDANCE,
    t2i_size: tuple[int, int] | None = defaults.T2I_SIZE,
    t2i_suffix: str = defaults.T2I_ORBIT_SUFFIX,
    model: str | Path | SVDModel | None = None,
    frames: int | None = None,
    steps: int | None = None,
    seed: int = defaults.SEED,
    size: int | None = None,
    min_guidance: float | None = None,
    max_guidance: float | None = None,
    orbit: str = defaults.ORBIT,
    elevation: float = defaults.ELEVATION,
    elevations: list[float] | None = None,
    azimuths: list[float] | None = None,
    object_fraction: float = defaults.OBJECT_FRACTION,
    preprocess: bool = True,
    decode_chunk: int | None = None,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    offload: bool = False,
    config: str | Path | None = None,
    loras: Sequence = (),
    lora_mode: str = defaults.LORA_MODE,
    output: str | Path | None = None,
    progress: bool = True,
    meshed: bool = False,
) -> OrbitResult:
    """Generate views all around the object in `image`, with the cameras that took them.

    The object is segmented (alpha, or a plain background), centred on a white square at `object_fraction` of
    its side and resized to the model's size. `elevation` is the camera's elevation in the photo (degrees); with
    SV3D_p the orbit may be static, dynamic (elevation wobble) or custom (`elevations` / `azimuths` lists that
    include the input view at azimuth 0); SV3D_u takes no camera and always makes a static orbit. `orbit="auto"`
    (the default) is `choose_orbit`'s: static, or dynamic when `meshed` (the views will be reconstructed, as
    `svd3d.generate_asset` does) and the model takes cameras.
    `preprocess=False` uses `image` as it is: it must already be the conditioning image (the object on white,
    square, at the generation size), e.g. a dataset's input view whose framing the generated views must keep.

    Instead of an image, a `prompt` and a diffusers text-to-image model `t2i_model` (folder or hub id) make the
    image first (svd3d.pipelines.text, seeded with `seed`); `t2i_suffix` (default: one whole object on a plain white
    background, svd3d.defaults) is appended to the prompt so that the object can be found. That image is written
    as prompt.png and goes through the same preprocessing as a photo.

    `loras` / `lora_mode`: LoRA adapters applied to the UNet for this job, as `generate_video` takes them.
    """
    timer = Timer()

    # 1. check inputs
    text = text_request(image, prompt, t2i_model, t2i_steps, t2i_guidance, t2i_size, t2i_suffix)  # None: an image
    for name, value, flag in (("frames", frames, "--frames"), ("steps", steps, "--steps")):
        check_positive(name, value, flag)
    check_positive("decode chunk", decode_chunk, "--decode-chunk")
    check_guidance(min_guidance, max_guidance)
    if size is not None:
        check_size(size, size)
    check_lora_mode(lora_mode)
    adapters = read_adapters(loras)
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        outputs.check_replaceable(out_path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    square = (size, size) if size else None
    check_memory(model, "orbit", square, frames, decode_chunk, torch_dtype, dev, early=True)
    if text is None:
        pil = load_image(image) if not isinstance(image, Image.Image) else image

    # 2. load the model and check it is an orbit model
    with timer("load"):
        model = ready_model(model, "orbit", torch_dtype, dev, offload, config)
    check_adapters_fit(model.unet, adapters, model.source)
    info = model.info
    names = model.unet.vector_names
    has_camera = "azimuths_rad" in names
    orbit = choose_orbit(orbit, has_camera and elevations is None and azimuths is None, meshed)
    orbit_name, spec = build_orbit(orbit, frames or info.num_frames, elevation, elevations, azimuths, seed)
    if not has_camera and orbit_name != "static":
        raise SVD3DError(
            f"{info.name} takes no camera, so it always makes a static orbit at the photo's own elevation; "
            "use an SV3D_p-type model for --orbit dynamic or custom views"
        )
    elevs, azims = spec.angles()  # svd3d order: 0 = input view, increasing azimuth
    T = len(azims)
    if frames is not None and T != frames:
        raise SVD3DError(f"--frames {frames} but the custom orbit lists {T} views; drop --frames or match it")
    side = size or info.width
    settings = OrbitSettings(
        orbit=orbit_name,
        num_frames=T,
        num_steps=steps or info.num_steps,
        min_guidance=info.min_guidance if min_guidance is None else min_guidance,
        max_guidance=info.max_guidance if max_guidance is None else max_guidance,
        cond_aug=info.cond_aug,
        size=side,
        object_fraction=object_fraction,
        decode_chunk=decode_chunk or min(T, 14),
        seed=seed,
        dtype=str(torch_dtype).removeprefix("torch."),
        device=str(dev),
        offload=offload,
        lora_mode=lora_mode,
    )
    log.info("orbit: %s, %s orbit of %d views at %dpx, %d steps, %s on %s", info.name, orbit_name, T, side,
             settings.num_steps, settings.dtype, dev)  # fmt: skip
    check_memory(model, "orbit", (side, side), T, settings.decode_chunk, torch_dtype, dev)
    warn_far_from_training(info, side, side, T)

    # 3. from a prompt: the text-to-image pipeline makes the image (loaded, run, freed again), seeded with `seed`
    made = None
    if text is not None:
        with timer("t2i"):
            made = text_to_image(text, seed=seed, device=dev, dtype=torch_dtype, offload=offload, progress=progress)
        pil = made.image

    # 4. preprocess: segment the object, centre it on white at object_fraction, resize to the model size
    #    (preprocess=False: the image already is the conditioning image and is only checked)
    with timer("preprocess"):
        named = str(image) if isinstance(image, str | Path) else None  # messages name the file
        try:
            prepared = (
                prepare_object(pil, side, object_fraction, name=named) if preprocess else as_conditioning(pil, side)
            )
        except SVD3DError as err:
            if made is None:
                raise
            raise SVD3DError(f"{err}. That image was made from the prompt: ask for one whole object on a plain "
                             "background (--t2i-suffix), or try another --seed") from None  # fmt: skip
    pixels = to_tensor(prepared.image).to(dev)  # (1, 3, S, S) in [-1, 1]

    # 5. per-frame vectors in the model's frame order (SV3D: the input view last)
    perm = model_order(T, info.frame_order)
    vector = orbit_vector(names, elevs, azims, perm, settings.cond_aug, info.azimuth_sign)[None]  # (1, T, F)

    # 6. encode (CLIP on the clean image, the VAE on it with cond_aug noise), sample with triangle guidance (lowest
    #    next to the input view, highest behind) and the LoRA adapters applied (undone after), decode in chunks
    with applied_adapters(model.unet, adapters, lora_mode, timer):
        model_frames = encode_sample_decode(
            model,
            pixels,
            vector,
            cond_aug=settings.cond_aug,
            steps=settings.num_steps,
            min_guidance=settings.min_guidance,
            max_guidance=settings.max_guidance,
            decode_chunk=settings.decode_chunk,
            seed=seed,
            offload=offload,
            timer=timer,
            progress=progress,
            what="views",
        )  # (T, S, S, 3), model order

    # 7. put the conditioning image in the input view's place, reorder to svd3d's order
    model_frames[int(np.flatnonzero(perm == 0)[0])] = np.asarray(prepared.image, np.float32) / 255.0
    views = np.empty_like(model_frames)
    views[perm] = model_frames

    # 8. cameras
    c2w = orbit_c2w(elevs, azims)
    intrinsics = Intrinsics.from_fov(side, side, info.fov_deg)

    run = {
        "written_by": "svd3d orbit",
        "job": "orbit",
        "command": command_line(),
        "input": input_record(image) if made is None else made.input_record(media.PROMPT_IMAGE),
        "model": model_record(model),
        "loras": [a.to_record() for a in adapters],
        "settings": asdict(settings),
        "preprocess": {"applied": preprocess, "method": prepared.method, "object_fraction": prepared.object_fraction},
        "cameras": {"elevations_deg": elevs.tolist(), "azimuths_deg": azims.tolist(), "fov_deg": info.fov_deg},
        "versions": versions(),
    }

    # 9. write the folder (staged under a hidden name, swapped into place when complete)
    if out_path is not None:
        run["output"] = str(out_path)
        with timer("write"), outputs.replacing(out_path, "orbit") as tmp:
            write_orbit_folder(tmp, prepared.image, views, elevs, azims, c2w, intrinsics,
                               prompt_png=made.png if made is not None else None)  # fmt: skip
            media.write_json(tmp / "run.json", {**run, "timings_s": dict(timer.seconds)})
            viewer.write_index(tmp, title=out_path.name)
    run["timings_s"] = dict(timer.seconds)
    return OrbitResult(
        views,
        elevs,
        azims,
        c2w,
        intrinsics,
        prepared.image,
        prepared.mask,
        settings,
        dict(timer.seconds),
        out_path,
        run,
        made.image if made is not None else None,
    )


def choose_orbit(orbit: str, has_camera: bool, meshed: bool) -> str:
    """`orbit="auto"` made concrete (other values pass through): the dynamic orbit when the views will be meshed
    and the model takes cameras (SV3D_p), else the static one.

    Measured: meshes from a dynamic orbit (the elevation wobbling about the photo's: the views see the top and the
    underside, which one elevation never does) beat the static orbit's. On ground-truth renders of the bench
    meshes, mean Chamfer 0.0126 against 0.0138 (benchmarks/recon.py); on tiny-orbit's own views of 4 held-out
    objects, Chamfer 0.0561 against 0.0597, volume IoU 0.445 against 0.418, normal consistency 0.671 against 0.657
    (`svd3d eval asset --orbit dynamic` / `static`). Views that are not meshed stay static: a steady turntable.
    """
    if orbit != "auto":
        return orbit
    return "dynamic" if has_camera and meshed else "static"


def as_conditioning(img: Image.Image, side: int) -> PreparedObject:
    """An image that already is an orbit model's conditioning image, used as it is (no crop, no resize):
    side x side, the object on white (RGBA is composited on white). Its mask is the alpha channel, or else the
    pixels away from white (as reconstruction finds them); bbox and object_fraction are measured on that mask."""
    if img.size != (side, side):
        raise SVD3DError(
            f"an image used as it is (preprocess=False) must be {side}x{side}, the generation size, got "
            f"{img.width}x{img.height}; pass size={img.width} if it is square, or let svd3d preprocess it"
        )
    rgb = composite_on_white(img)
    if img.mode == "RGBA":
        mask, method = np.asarray(img.getchannel("A"), np.float32) / 255.0, "alpha"
    else:
        mask, method = mask_from_white(np.asarray(rgb, np.float32) / 255.0), "background"
    if not (mask >= 0.5).any():
        raise SVD3DError(f"the {side}x{side} image used as it is shows no object: it is all white (or transparent)")
    bbox = mask_bbox(mask >= 0.5)
    fraction = max(bbox[2] - bbox[0], bbox[3] - bbox[1]) / side
    return PreparedObject(image=rgb, mask=mask, method=method, bbox=bbox, object_fraction=fraction)


def write_orbit_folder(folder: Path, input_image, views, elevs, azims, c2w, intrinsics, prompt_png=None) -> None:
    """input.png, frames/NNN.png, orbit.mp4 (GIF without a video writer), transforms.json, preview.png; and
    prompt.png, the image made from the prompt (PNG bytes `prompt_png`), when the orbit started from text."""
    input_image.save(folder / "input.png")
    if prompt_png is not None:
        (folder / media.PROMPT_IMAGE).write_bytes(prompt_png)
    frames_u8 = to_uint8(views)
    (folder / "frames").mkdir()
    media.write_frames_png(frames_u8, folder / "frames")
    try:
        media.write_video(frames_u8, folder / "orbit.mp4", fps=10)
    except SVD3DError:  # no imageio-ffmpeg: a GIF plays everywhere
        media.write_video(frames_u8, folder / "orbit.gif", fps=10)
    cams = [CameraFrame(f"frames/{i:03d}.png", c2w[i], float(elevs[i]), float(azims[i])) for i in range(len(views))]
    write_transforms(folder / "transforms.json", cams, intrinsics)
    labels = ["input"] + [f"{i:03d} az{azims[i]:.0f} el{elevs[i]:.0f}" for i in range(len(views))]
    media.contact_sheet([input_image, *list(frames_u8)], labels, columns=8).save(folder / "preview.png")
