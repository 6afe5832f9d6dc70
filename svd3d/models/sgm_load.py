"""Load an original sgm single-file checkpoint (svd, svd_xt, sv3d_u, sv3d_p, or a fine-tune) as an SVDModel."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch

from svd3d.errors import SVD3DError
from svd3d.models import sgm_convert as conv
from svd3d.models.bundle import SVDModel
from svd3d.models.files import fingerprint, tensor_shapes
from svd3d.models.sgm_config import SgmArch, read_sgm_yaml, released_arch

log = logging.getLogger(__name__)

_RELEASED_SHAPES = {"time_embed.0.weight": (1280, 320), "input_blocks.1.1.proj_in.weight": (320, 320)}


def detect_arch(path: Path, shapes: dict[str, tuple[int, ...]], config: Path | None = None) -> SgmArch:
    """Which architecture a checkpoint holds: an explicit or sibling sgm yaml wins; otherwise the released config
    that its keys and shapes match (svd-family / sv3d_u / sv3d_p by the vector width; svd vs svd_xt by file name,
    as the two share every shape)."""
    if not any(k.startswith(conv.UNET) for k in shapes):
        sample = ", ".join(sorted(shapes)[:3])
        raise SVD3DError(
            f"{path} is not an sgm SVD/SV3D checkpoint: no '{conv.UNET}*' keys (found e.g. {sample}); "
            "for a diffusers-format model pass its folder instead"
        )
    sibling = path.with_suffix(".yaml")
    if config is not None or sibling.is_file():
        arch = read_sgm_yaml(config or sibling, name=path.stem)
        log.info("architecture from %s", config or sibling)
        return arch
    adm = shapes.get(conv.UNET + "label_emb.0.0.weight", (0, 0))[1]
    family = {768: "svd", 256: "sv3d_u", 1280: "sv3d_p"}.get(adm)
    released = all(shapes.get(conv.UNET + k) == s for k, s in _RELEASED_SHAPES.items())
    if family is None or not released:
        width = shapes.get(conv.UNET + "time_embed.0.weight", (0, 0))[1]
        raise SVD3DError(
            f"{path} does not match a released SVD/SV3D architecture (UNet width {width}, vector width {adm}); "
            f"put its sgm config beside it as {sibling.name}, or pass --config CONFIG.yaml"
        )
    if family == "svd" and "xt" in path.name.lower():
        family = "svd_xt"
    log.info("detected released architecture %s from keys and shapes", family)
    return released_arch(family)


def _expected(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _fill(module: torch.nn.Module, tensors: Iterable[tuple[str, torch.Tensor]], dtype, what: str, path: Path) -> None:
    """Assign streamed tensors into a meta-device module, casting each one; every key must arrive, shapes checked."""
    expected = _expected(module)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in tensors:
        if key not in expected:
            raise SVD3DError(f"{path}: converted {what} key {key!r} has no place in the model; wrong --config?")
        want = expected[key]
        if tuple(tensor.shape) != want:
            if tensor.numel() == torch.Size(want).numel() and tensor.ndim == 4 and len(want) == 2:
                tensor = tensor.reshape(want)  # 1x1 conv attention projections -> linear
            else:
                raise SVD3DError(
                    f"{path}: {what} tensor {key} has shape {tuple(tensor.shape)}, the config expects {want}; "
                    "the checkpoint and its config disagree (wrong --config or yaml?)"
                )
        state[key] = tensor.to(dtype)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise SVD3DError(
            f"{path}: {len(missing)} {what} weights are missing (e.g. {', '.join(missing[:3])}); "
            "the file is incomplete or its config does not describe it"
        )
    module.load_state_dict(state, strict=True, assign=True)


def empty_modules(arch: SgmArch) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(unet, vae, clip) of an architecture on the meta device: shapes only, no memory, no random init."""
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from svd3d.models.unet import PerFrameUNet  # subclasses diffusers' UNet: lazy, with diffusers

    info = arch.info
    with torch.device("meta"):
        unet = PerFrameUNet(**conv.unet_config(arch.unet, info.vector_fields, info.num_frames))
        vae_cls, vae_cfg = conv.vae_config(arch)
        vae_types = {"AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder, "AutoencoderKL": AutoencoderKL}
        vae = vae_types[vae_cls](**vae_cfg)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**conv.clip_config(arch.clip)))
    return unet, vae, clip


def restore_clip_buffers(clip: torch.nn.Module) -> None:
    """transformers keeps CLIP's position ids as a non-persistent buffer: rebuild it off the meta device."""
    emb = clip.vision_model.embeddings
    device = emb.position_embedding.weight.device
    ids = torch.arange(emb.num_positions, device=device).expand((1, -1))
    emb.register_buffer("position_ids", ids, persistent=False)


def load_sgm(path: Path, dtype: torch.dtype = torch.float32, config: Path | None = None) -> SVDModel:
    """Convert an sgm checkpoint to diffusers modules in memory (CPU), streaming and casting tensor by tensor."""
    from safetensors import safe_open

    path = Path(path)
    shapes = tensor_shapes(path)
    arch = detect_arch(path, shapes, config)
    info = arch.info
    unet, vae, clip = empty_modules(arch)

    enc_prefix = f"conditioner.embedders.{arch.vae_embedder}.encoder."
    with safe_open(str(path), framework="pt", device="cpu") as f:

        def read(key: str) -> torch.Tensor:
            if key not in shapes:
                raise SVD3DError(
                    f"{path}: missing tensor {key!r}; the file is incomplete or not an SVD/SV3D checkpoint"
                )
            return f.get_tensor(key)

        def mapped(rules) -> Iterable[tuple[str, torch.Tensor]]:
            for dst, src in conv.apply_rules(shapes, rules).items():
                yield dst, read(src)

        _fill(unet, mapped(conv.unet_rules(arch.unet)), dtype, "UNet", path)
        vae_rules = conv.encoder_rules(arch.encoder, enc_prefix) + conv.decoder_rules(
            arch.decoder, temporal=info.decoder == "temporal"
        )
        _fill(vae, mapped(vae_rules), dtype, "VAE", path)
        _fill(clip, conv.clip_tensors(read, arch.clip), dtype, "CLIP", path)

    restore_clip_buffers(clip)
    model = SVDModel(unet, vae, clip, info, source=str(path), fingerprint=fingerprint([path]))
    return model.eval()
