"""The model a recipe starts from: a new one built from its [model.arch], or loaded weights, turned into an orbit
model when a video model starts an orbit recipe (SV3D's recipe: the camera embedding added, new weights zero)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch

from svd3d.core.embeddings import sinusoidal_embedding
from svd3d.errors import SVD3DError
from svd3d.models import load_model
from svd3d.models.bundle import SVDModel
from svd3d.models.info import RELEASED, ModelInfo
from svd3d.models.sgm_config import CLIPArch, UNetArch
from svd3d.models.tiny import build_model
from svd3d.models.unet import PerFrameUNet
from svd3d.training.recipe import Recipe

log = logging.getLogger(__name__)

ORBIT_FIELDS = {
    "sv3d_p": (("cond_aug", 256), ("polars_rad", 512), ("azimuths_rad", 512)),
    "sv3d_u": (("cond_aug", 256),),
}


def recipe_info(recipe: Recipe, base: ModelInfo | None = None) -> ModelInfo:
    """The trained model's ModelInfo: the released model of its kind (SVD-XT / SV3D_p or SV3D_u) as the template,
    with the recipe's name, frames, size and noise range; from `base` when continuing a model of the same kind."""
    m, n = recipe.model, recipe.noise
    if base is not None and base.kind == m.kind:
        template = base
    elif m.kind == "video":
        template = RELEASED["svd_xt"]
    else:
        template = replace(RELEASED[m.camera], decoder="temporal" if base is not None else "image")
    fields = ORBIT_FIELDS[m.camera] if m.kind == "orbit" else template.vector_fields
    return replace(
        template,
        name=recipe.name,
        vector_fields=tuple(fields),
        num_frames=m.frames,
        width=m.size,
        height=m.size,
        sigma_min=n.sigma_min,
        sigma_max=n.sigma_max,
        num_steps=min(template.num_steps, 25) if m.init == "scratch" else template.num_steps,
        cond_aug=round(math.exp(n.cond_aug_mean), 6),  # the median of the training distribution
        extra={"recipe": recipe.name, "trained_by": "svd3d train"},
    )


def scratch_model(recipe: Recipe) -> SVDModel:
    """A new float32 model with the real classes, seeded by train.seed, sized by [model.arch]."""
    a = recipe.model.arch
    levels = len(a.unet_mult)
    bad = [level for level in a.attention_levels if not 0 <= level < levels]
    if bad:
        raise SVD3DError(f"model.arch.attention_levels {list(a.attention_levels)}: levels run 0..{levels - 1}")
    unet = UNetArch(
        model_channels=a.unet_channels,
        channel_mult=tuple(a.unet_mult),
        attention_resolutions=tuple(sorted({2**level for level in a.attention_levels})),
        num_res_blocks=a.unet_blocks,
        num_head_channels=a.head_channels,
        context_dim=a.context_dim,
    )
    clip = CLIPArch(width=a.clip_width, layers=a.clip_layers, heads=a.clip_heads, patch_size=14, image_size=224,
                    embed_dim=a.context_dim)  # fmt: skip
    info = recipe_info(recipe)
    return build_model(info, unet, tuple(a.vae_channels), a.vae_blocks, clip, recipe.train.seed,
                       fingerprint=f"scratch-{recipe.name}")  # fmt: skip


def orbit_from_video(model: SVDModel, info: ModelInfo, video_values: dict[str, float] | None = None) -> SVDModel:
    """Turn a video model (fps_id ‖ motion_bucket_id ‖ cond_aug vector) into an orbit model with `info`'s vector
    fields (cond_aug ‖ polars_rad ‖ azimuths_rad for SV3D_p): every weight is kept; in the vector MLP's first layer
    the cond_aug columns move to their new place, the camera columns start at zero, and what the dropped fps and
    motion columns added at `video_values` (default: the model's own fps - 1 and motion bucket) is folded into the
    bias. So the new model equals the video model run at those values until training moves the camera weights."""
    old = model.unet
    if model.info.kind != "video":
        raise SVD3DError(f"{model.source} is a {model.info.kind} model; an orbit model starts from a video model")
    values = video_values or {"fps_id": model.info.fps - 1, "motion_bucket_id": model.info.motion_bucket_id}
    config = dict(old.config)
    config.update(
        projection_class_embeddings_input_dim=sum(w for _, w in info.vector_fields),
        vector_fields=[list(f) for f in info.vector_fields],
        num_frames=info.num_frames,
    )
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        new = PerFrameUNet(**config)
    state = old.state_dict()
    weight, bias = state.pop("add_embedding.linear_1.weight"), state.pop("add_embedding.linear_1.bias")
    old_cols = _columns(old.vector_fields)
    new_cols = _columns(info.vector_fields)
    new_weight = torch.zeros(weight.shape[0], sum(w for _, w in info.vector_fields), dtype=weight.dtype)
    new_bias = bias.clone()
    for name, (start, stop) in old_cols.items():
        if name in new_cols:
            n0, n1 = new_cols[name]
            new_weight[:, n0:n1] = weight[:, start:stop]
        elif name in values:  # dropped: its constant contribution moves into the bias
            emb = sinusoidal_embedding(torch.tensor([float(values[name])]), stop - start).to(weight.dtype)
            new_bias += (weight[:, start:stop] @ emb[0]).to(bias.dtype)
        else:
            raise SVD3DError(f"the video model's vector field {name!r} has no value to fold in; pass video_values")
    state["add_embedding.linear_1.weight"] = new_weight
    state["add_embedding.linear_1.bias"] = new_bias
    new.load_state_dict(state, assign=True)  # config carries resnet_eps; every tensor is replaced, dtype kept
    log.info("orbit model from %s: camera columns %s start at zero", model.source, [n for n, _ in info.vector_fields])
    return SVDModel(new, model.vae, model.image_encoder, info, source=model.source, fingerprint=model.fingerprint)


def _columns(fields) -> dict[str, tuple[int, int]]:
    out, start = {}, 0
    for name, width in fields:
        out[name] = (start, start + width)
        start += width
    return out


def initial_model(recipe: Recipe) -> SVDModel:
    """The float32 model a recipe's run starts from (before any checkpoint is restored)."""
    m = recipe.model
    if m.init == "scratch":
        return scratch_model(recipe)
    model = load_model(m.init, dtype=torch.float32)
    if model.info.kind == m.kind:
        if m.kind == "orbit" and tuple(model.unet.vector_fields) != ORBIT_FIELDS[m.camera]:
            raise SVD3DError(f"{m.init} has vector fields {model.unet.vector_names}, not those of {m.camera}")
        info = recipe_info(recipe, model.info)
        return SVDModel(model.unet, model.vae, model.image_encoder, info, model.source, model.fingerprint)
    if m.kind == "video":
        raise SVD3DError(f"{m.init} is an orbit model; a video recipe starts from scratch or from a video model")
    if recipe.lora is not None:  # a LoRA cannot train the camera embedding a video model would need
        raise SVD3DError(f"{m.init} is a video model; a LoRA adapts a model of its own kind: set model.kind = 'video' "
                         "or start from an orbit model")  # fmt: skip
    return orbit_from_video(model, recipe_info(recipe, model.info))
