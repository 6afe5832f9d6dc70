"""Text -> the conditioning image, with any diffusers text-to-image pipeline (loaded through
`diffusers.AutoPipelineForText2Image`): the first stage of `svd3d video --prompt` and `svd3d orbit --prompt`, after
which the job runs exactly as from an image file.

`text_request` checks the options before any work; `text_to_image` loads the pipeline, makes one image from the
run's seed (noise drawn on the CPU, as the video and orbit pipelines draw theirs) and frees the pipeline again.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import inspect
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from svd3d import media
from svd3d.errors import SVD3DError
from svd3d.image import check_size
from svd3d.models import HUB_ID
from svd3d.models.files import fingerprint

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")  # what the model fingerprint reads
EXAMPLE_MODEL = "stabilityai/sd-turbo"  # named in messages: a small, fast text-to-image model on the hub


@dataclass(frozen=True)
class TextToImage:
    """How a job's conditioning image is made from text; built and checked by `text_request`."""

    prompt: str  # as the user wrote it
    model: str  # a diffusers text-to-image folder (model_index.json) or a hub id
    suffix: str  # appended to the prompt before the model sees it ("" for none)
    steps: int | None  # sampling steps; None: the pipeline's own default
    guidance: float | None  # classifier-free guidance scale; None: the pipeline's own default
    size: tuple[int, int] | None  # (width, height) of the image; None: the pipeline's native size

    @property
    def full_prompt(self) -> str:
        """What the text-to-image model is given."""
        return self.prompt + self.suffix


@dataclass
class MadeImage:
    """An image made from text, and what run.json records about how."""

    image: Image.Image  # RGB, as the text-to-image pipeline made it (before the job's own preprocessing)
    png: bytes  # the image encoded as PNG: what the job writes beside its output
    record: dict  # prompt, suffix, full prompt, model (source, pipeline class, fingerprint), seed, steps, ...

    def input_record(self, name: str | None) -> dict:
        """run.json's "input" for a job started from text: the prompt, the image's file `name` beside the output
        (None: not written) and its sha256 (which marks that file as svd3d's), and how it was made."""
        sha256 = hashlib.sha256(self.png).hexdigest()
        return {"prompt": self.record["prompt"], "image": name, "image_sha256": sha256, "text_to_image": self.record}


def text_request(
    image,
    prompt: str | None,
    model: str | Path | None,
    steps: int | None,
    guidance: float | None,
    size: tuple[int, int] | None,
    suffix: str,
) -> TextToImage | None:
    """Check a job's start: an `image`, or a `prompt` with a text-to-image `model` (never both, never neither), and
    the text-to-image options. Returns None for a job that starts from an image. Reads only the model's
    model_index.json: nothing is loaded."""
    options = {"--t2i-model": model, "--t2i-steps": steps, "--t2i-guidance": guidance, "--t2i-size": size}
    if prompt is None:
        if image is None:
            raise SVD3DError(
                f'nothing to start from: pass an IMAGE, or --prompt "..." with --t2i-model (a diffusers '
                f"text-to-image folder or hub id, e.g. {EXAMPLE_MODEL})"
            )
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            raise SVD3DError(f'{", ".join(given)} only work with --prompt: drop {given[0]}, or drop the IMAGE and '
                             'pass --prompt "..."')  # fmt: skip
        return None
    if image is not None:
        raise SVD3DError(f'pass an IMAGE or --prompt, not both (got {_name(image)} and --prompt "{prompt}")')
    if not isinstance(prompt, str) or not prompt.strip():
        raise SVD3DError('--prompt is empty; describe the picture to start from, e.g. --prompt "a red armchair"')
    if model is None:
        raise SVD3DError(
            f"--prompt needs a text-to-image model: pass --t2i-model with a diffusers folder or a hub id "
            f"(e.g. --t2i-model {EXAMPLE_MODEL})"
        )
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise SVD3DError(f"--t2i-steps must be a whole number of at least 1, got {steps!r}")
    if guidance is not None and not (isinstance(guidance, int | float) and math.isfinite(guidance) and guidance >= 0):
        raise SVD3DError(f"--t2i-guidance must be 0 or more (0 turns guidance off), got {guidance!r}")
    if size is not None:
        check_size(*size)
    check_t2i_model(model)
    return TextToImage(prompt=prompt, model=str(model), suffix=suffix or "", steps=steps, guidance=guidance,
                       size=tuple(size) if size is not None else None)  # fmt: skip


def check_t2i_model(model: str | Path) -> None:
    """A local folder must be a diffusers pipeline (model_index.json) of a kind AutoPipelineForText2Image loads;
    anything else must look like a hub id (owner/name), which is fetched or read from the cache when the job runs."""
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise SVD3DError(
                f"--t2i-model {text} has no model_index.json, so it is not a diffusers pipeline folder; pass a "
                "folder written by a text-to-image pipeline's save_pretrained, or a hub id"
            )
        try:
            class_name = json.loads(index.read_text())["_class_name"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SVD3DError(f"{index} is not a readable pipeline index ({type(err).__name__}); re-download the "
                             "model") from None  # fmt: skip
        if text_to_image_class(class_name) is None:
            raise SVD3DError(
                f"--t2i-model {text} holds a {class_name}, not a text-to-image pipeline; pass a text-to-image "
                f"model such as a Stable Diffusion, SDXL, SD3 or FLUX folder or hub id (e.g. {EXAMPLE_MODEL})"
            )
        return
    if path.exists():
        raise SVD3DError(f"--t2i-model {text} is a file; a text-to-image model is a diffusers folder "
                         "(with model_index.json) or a hub id (owner/name)")  # fmt: skip
    if not HUB_ID.match(text) or text.startswith((".", "~")):
        raise SVD3DError(f"--t2i-model {text} does not exist: it is neither a folder nor a hub id (owner/name); "
                         "check the path")  # fmt: skip


def text_to_image_class(class_name: str) -> str | None:
    """The text-to-image pipeline AutoPipelineForText2Image makes of a pipeline class named in a model_index.json
    (itself, or the text-to-image sibling of an image-to-image or inpainting class); None when there is none."""
    from diffusers.pipelines import auto_pipeline

    for mapping in auto_pipeline.SUPPORTED_TASKS_MAPPINGS:
        for family, cls in mapping.items():
            if cls.__name__ == class_name:
                found = auto_pipeline.AUTO_TEXT2IMAGE_PIPELINES_MAPPING.get(family)
                return found.__name__ if found is not None else None
    return None


def text_to_image(
    request: TextToImage,
    *,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    offload: bool = False,
    progress: bool = True,
) -> MadeImage:
    """Make the image `request` describes: load the pipeline (a hub id is fetched, or read from the cache), draw the
    noise on the CPU from `seed` (so a seed makes the same image on any device), generate, and free the pipeline
    before the job's own model runs. `offload` keeps each of its networks on the CPU until it runs."""
    # 1. load the pipeline; a hub id becomes its local snapshot, so both kinds are fingerprinted alike
    folder = Path(request.model).expanduser()
    if not folder.is_dir():
        folder = _download(request.model)
    pipe = _load(folder, request.model, dtype)
    name = type(pipe).__name__

    # 2. the options it takes: steps, guidance and size are passed only when asked for, so its defaults stand
    params = inspect.signature(pipe.__call__).parameters
    asked = {"num_inference_steps": request.steps, "guidance_scale": request.guidance}
    if request.size is not None:
        asked |= {"width": request.size[0], "height": request.size[1]}
    flags = {"num_inference_steps": "--t2i-steps", "guidance_scale": "--t2i-guidance", "width": "--t2i-size",
             "height": "--t2i-size"}  # fmt: skip
    for key, value in asked.items():
        if value is not None and key not in params:
            raise SVD3DError(f"{request.model} ({name}) takes no {key}; drop {flags[key]}")
    kwargs = {key: value for key, value in asked.items() if value is not None}

    # 3. place it
    if offload and device.type != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=not progress, desc="text to image")

    # 4. generate from the seed
    log.info("text to image: %s (%s), seed %d, %s", request.model, name, seed,
             ", ".join(f"{k} {v}" for k, v in kwargs.items()) or "its default steps, guidance and size")  # fmt: skip
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.inference_mode():
        result = pipe(prompt=request.full_prompt, generator=generator, output_type="pil", **kwargs)
    flagged = getattr(result, "nsfw_content_detected", None)
    if flagged and flagged[0]:
        raise SVD3DError(f"{request.model}'s safety checker blanked the image made from this prompt; change the "
                         "prompt or --seed")  # fmt: skip
    image = result.images[0].convert("RGB")

    # 5. free it, and record what made the image
    record = {
        "prompt": request.prompt,
        "suffix": request.suffix,
        "full_prompt": request.full_prompt,
        "model": {"source": request.model, "pipeline": name, "fingerprint": _fingerprint(folder)},
        "seed": seed,
        "steps": kwargs.get("num_inference_steps", _default(params, "num_inference_steps")),
        "guidance": kwargs.get("guidance_scale", _default(params, "guidance_scale")),
        "size": list(image.size),
    }
    del pipe, result
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return MadeImage(image, media.png_bytes(image), record)


def _download(repo_id: str) -> Path:
    """The local snapshot of a hub pipeline, with only the files its pipeline class loads (cache first)."""
    from diffusers import DiffusionPipeline
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    local = f"on a connected machine run `hf download {repo_id} --local-dir DIR`, then pass --t2i-model DIR"
    try:
        return Path(DiffusionPipeline.download(repo_id))
    except GatedRepoError as err:
        raise SVD3DError(f"{repo_id} is gated: accept its licence on huggingface.co and run `hf auth login`; or "
                         f"{local}") from err  # fmt: skip
    except RepositoryNotFoundError as err:
        raise SVD3DError(f"no model {repo_id!r} on the Hugging Face hub; check the id, or pass a local folder") from err
    except Exception as err:  # offline, not cached, a network error: all read the same to the user
        raise SVD3DError(
            f"cannot reach the Hugging Face hub for {repo_id!r} and it is not in the local cache; {local} (if "
            f"{repo_id} is meant to be a folder, check the path)"
        ) from err


def _load(folder: Path, source: str, dtype: torch.dtype):
    from diffusers import AutoPipelineForText2Image

    try:
        with _no_loading_bars(), warnings.catch_warnings():
            # newer diffusers call it `dtype` and warn about `torch_dtype`, which every version since 0.32 takes
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return AutoPipelineForText2Image.from_pretrained(folder, torch_dtype=dtype)
    except Exception as err:  # a missing component, truncated weights, an unknown class: diffusers' own words
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SVD3DError(f"cannot load the text-to-image model {source} ({type(err).__name__}: {first}); "
                         "re-download it, or check that it is a complete diffusers pipeline folder") from err  # fmt: skip


@contextlib.contextmanager
def _no_loading_bars():
    """diffusers' and transformers' bars while components load from disk are off (svd3d loads its own models
    without one); the generation's own bar and a hub download's stay."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was_on = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on[0]:
            diffusers_logging.enable_progress_bar()
        if was_on[1]:
            transformers_logging.enable_progress_bar()


def _fingerprint(folder: Path) -> str | None:
    """svd3d.models.files.fingerprint over the weight files in the pipeline's folder (None when it holds none)."""
    weights = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return fingerprint(weights) if weights else None


def _default(params, name: str):
    param = params.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _name(image) -> str:
    return "an image" if isinstance(image, Image.Image) else str(image)
