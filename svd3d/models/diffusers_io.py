"""diffusers-format folders: load one (a local snapshot of stabilityai/stable-video-diffusion-img2vid-xt, or a folder
svd3d wrote), and write one (``svd3d convert``). SVD / SVD-XT folders are exactly what diffusers'
StableVideoDiffusionPipeline loads; SV3D folders record svd3d's UNet class."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from svd3d import outputs
from svd3d.core.clip import CLIP_MEAN, CLIP_STD
from svd3d.errors import SVD3DError
from svd3d.models.bundle import SVDModel
from svd3d.models.files import fingerprint
from svd3d.models.info import INFO_FILE, RELEASED, SVD_VECTOR_FIELDS, ModelInfo

log = logging.getLogger(__name__)

SCHEDULER_CONFIG = {  # the EulerDiscreteScheduler config SVD ships with; svd3d's own sampler does not read it
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


COMPONENTS = ("unet", "vae", "image_encoder")  # the parts svd3d loads from a diffusers folder
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weight files that unpickle (can run code)


def read_model_index(folder: Path) -> dict:
    """The folder's model_index.json: an object naming at least unet, vae and image_encoder as [library, class]."""
    path = folder / "model_index.json"
    if not path.is_file():
        raise SVD3DError(
            f"{folder} is not a diffusers-format model folder (no model_index.json); pass the folder that holds "
            "unet/, vae/ and image_encoder/, or a single .safetensors checkpoint"
        )
    fix = "restore it from the model's source (or re-export the model with `svd3d convert`)"
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SVD3DError(f"{path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(index, dict):
        raise SVD3DError(f"{path} must hold a JSON object, got a {type(index).__name__}; {fix}")
    for part in COMPONENTS:
        entry = index.get(part)
        if entry is None:
            raise SVD3DError(f"{path} lists no {part!r} component; {fix}")
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)):
            raise SVD3DError(f"{path}: {part!r} must be [library, class], got {entry!r}; {fix}")
    return index


def check_safetensors_only(folder: Path, part: str) -> None:
    """Refuse a component whose weights are not safetensors, by file name only: nothing is opened or unpickled."""
    sub = folder / part
    if any(sub.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in sub.iterdir() if p.suffix in PICKLE_SUFFIXES) if sub.is_dir() else []
    if pickles:
        raise SVD3DError(
            f"{sub}: only .safetensors weights are loaded, found {', '.join(pickles)} (pickle files can run code); "
            "convert them to safetensors first, in a session you trust (save_pretrained writes safetensors)"
        )
    raise SVD3DError(f"{sub} holds no .safetensors weights; re-download or re-export the model")


def read_info(folder: Path) -> ModelInfo | None:
    """The folder's svd3d.json, or None when there is none; a broken one is a clear error."""
    try:
        return ModelInfo.read(folder)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise SVD3DError(
            f"{folder / INFO_FILE} is not a valid svd3d model description ({type(err).__name__}: {err}); "
            "restore it, or delete it to use the stock SVD defaults"
        ) from None


def _weights_variant(folder: Path) -> str | None:
    """'fp16' when a component ships only `*.fp16.safetensors` (as hub snapshots downloaded for half precision do)."""
    unet = folder / "unet"
    if (unet / "diffusion_pytorch_model.safetensors").is_file():
        return None
    if (unet / "diffusion_pytorch_model.fp16.safetensors").is_file():
        return "fp16"
    return None


def infer_info(folder: Path, unet_config: dict, vae_class: str, vector_fields: tuple) -> ModelInfo:
    """Defaults for a stock diffusers SVD folder that has no svd3d.json: SVD-XT when it was trained on 25 frames,
    with the vector widths its UNet config says (`addition_time_embed_dim`, 256 in the released models)."""
    name = "svd_xt" if unet_config.get("num_frames", 25) >= 25 else "svd"
    base = RELEASED[name]
    if vae_class != "AutoencoderKLTemporalDecoder":
        raise SVD3DError(f"{folder}: a folder without {INFO_FILE} must be an SVD model with a temporal VAE decoder")
    if unet_config.get("block_out_channels", [320])[0] != 320:  # not the released size: use its own resolution
        side = int(unet_config.get("sample_size") or 64) * 8
        base = replace(base, width=side, height=side)
    frames = int(unet_config.get("num_frames", base.num_frames))
    return replace(base, name=folder.name, num_frames=frames, vector_fields=tuple(vector_fields))


def load_diffusers(folder: Path, dtype: torch.dtype = torch.float32, source: str | None = None) -> SVDModel:
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionModelWithProjection

    from svd3d.models.unet import PerFrameUNet  # subclasses diffusers' UNet: lazy, with diffusers

    folder = Path(folder)
    index = read_model_index(folder)
    for part in COMPONENTS:
        if not (folder / part / "config.json").is_file():
            raise SVD3DError(
                f"{folder}: component {part}/ is missing; the folder must hold unet/, vae/, image_encoder/"
            )
        check_safetensors_only(folder, part)
    vae_class = index["vae"][1]
    vae_types = {"AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder, "AutoencoderKL": AutoencoderKL}
    if vae_class not in vae_types:
        raise SVD3DError(f"{folder}: VAE class {vae_class} is not supported ({', '.join(vae_types)})")
    described = read_info(folder)  # before the weights: a broken svd3d.json fails fast
    variant = _weights_variant(folder)
    try:
        # use_safetensors: never fall back to a pickle file (check_safetensors_only says so first, by name)
        safe = {"torch_dtype": dtype, "variant": variant, "use_safetensors": True}
        unet = PerFrameUNet.from_pretrained(folder, subfolder="unet", **safe)
        vae = vae_types[vae_class].from_pretrained(folder, subfolder="vae", **safe)
        clip = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", **safe)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SVD3DError(f"cannot load the model in {folder}: {first}") from err
    info = described or infer_info(folder, dict(unet.config), vae_class, tuple(unet.vector_fields))
    if tuple(info.vector_fields) != tuple(unet.vector_fields):
        raise SVD3DError(
            f"{folder}: {INFO_FILE} lists vector fields {info.vector_fields}, the UNet {unet.vector_fields}"
        )
    weights = sorted(folder.glob("*/*.safetensors"))
    model = SVDModel(unet, vae, clip, info, source=source or str(folder), fingerprint=fingerprint(weights))
    return model.eval()


@outputs.holds_output(lambda args: args["out_dir"])
def save_diffusers(model: SVDModel, out_dir: Path) -> Path:
    """Write a diffusers-format folder (staged, swapped into place when complete). `out_dir` may be new, empty or
    an earlier svd3d output, which is replaced; anything else is refused (svd3d.outputs)."""
    from transformers import CLIPImageProcessor

    out_dir = Path(out_dir)
    outputs.check_replaceable(out_dir)
    with outputs.replacing(out_dir, "model") as tmp:
        stock = model.info.kind == "video" and tuple(model.unet.vector_fields) == SVD_VECTOR_FIELDS
        model.unet.save_pretrained(tmp / "unet")
        if stock:  # plain SVD: record diffusers' own class so StableVideoDiffusionPipeline loads it as is
            cfg_path = tmp / "unet" / "config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["_class_name"] = "UNetSpatioTemporalConditionModel"
            cfg.pop("vector_fields", None)
            cfg.pop("resnet_eps", None)  # diffusers' class hard-codes 1e-6; svd3d reads such folders with 1e-5
            cfg_path.write_text(json.dumps(cfg, indent=2))
        model.vae.save_pretrained(tmp / "vae")
        model.image_encoder.save_pretrained(tmp / "image_encoder")
        size = model.image_encoder.config.image_size
        CLIPImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
            resample=3,
        ).save_pretrained(tmp / "feature_extractor")
        (tmp / "scheduler").mkdir()
        (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
        index = {
            "_class_name": "StableVideoDiffusionPipeline" if stock else "SV3DPipeline",
            "_svd3d_note": None if stock else "run with svd3d (the UNet has per-frame camera conditioning)",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "unet": ["diffusers", "UNetSpatioTemporalConditionModel"] if stock else ["svd3d", "PerFrameUNet"],
            "vae": ["diffusers", type(model.vae).__name__],
        }
        if stock:
            del index["_svd3d_note"]
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
        (tmp / INFO_FILE).write_text(model.info.to_json())
    log.debug("wrote %s", out_dir)
    return out_dir
