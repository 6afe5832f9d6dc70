"""Architecture of an original sgm (Stability ``generative-models``) checkpoint, as typed dataclasses.

A single-file checkpoint carries no config, and attention head widths cannot be read from weights. The four
released files match the released configs built in here; any other file (a fine-tune, the tiny parity fixtures) is
described by the sgm yaml found beside it (``<name>.yaml``) or named explicitly. The yaml is read as data: only the
fields that shape the network are taken, and the class names it lists are checked against what svd3d supports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from svd3d.errors import SVD3DError
from svd3d.models.info import RELEASED, ModelInfo


@dataclass(frozen=True)
class UNetArch:
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    num_head_channels: int = 64
    context_dim: int = 1024
    adm_in_channels: int = 768
    transformer_depth: int = 1
    in_channels: int = 8
    out_channels: int = 4


@dataclass(frozen=True)
class VAEArch:
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4


@dataclass(frozen=True)
class CLIPArch:
    """open_clip vision tower (ViT-H-14 for all released models)."""

    width: int = 1280
    layers: int = 32
    heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    embed_dim: int = 1024
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class SgmArch:
    """Everything needed to rebuild an sgm SVD / SV3D checkpoint as diffusers modules."""

    info: ModelInfo
    unet: UNetArch
    encoder: VAEArch  # the conditioner's VAE (encodes the conditioning image)
    decoder: VAEArch  # the first stage's decoder (decodes the samples)
    clip: CLIPArch
    vae_embedder: int  # index of the conditioner embedder whose `.encoder.` encodes the image
    scale_factor: float = 0.18215


def released_arch(name: str) -> SgmArch:
    """The built-in architecture of a released checkpoint: svd, svd_xt, sv3d_u or sv3d_p."""
    info = RELEASED[name]
    adm = sum(w for _, w in info.vector_fields)
    return SgmArch(
        info=info,
        unet=UNetArch(adm_in_channels=adm),
        encoder=VAEArch(),
        decoder=VAEArch(),
        clip=CLIPArch(),
        vae_embedder=3 if info.kind == "video" else 1,
    )


# ---------------------------------------------------------------------------------------------- yaml reading

_KNOWN_OPEN_CLIP = {"ViT-H-14": CLIPArch()}


def _get(d: dict, path: str, source: Path):
    cur = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise SVD3DError(f"{source}: missing '{path}'; is this an sgm SVD/SV3D sampling config?")
        cur = cur[part]
    return cur


def _cls(target: str) -> str:
    return str(target).rsplit(".", 1)[-1]


def _vae_arch(ddconfig: dict, source: Path) -> VAEArch:
    if ddconfig.get("attn_resolutions"):
        raise SVD3DError(f"{source}: VAE attn_resolutions {ddconfig['attn_resolutions']} are not supported (use [])")
    return VAEArch(
        ch=int(ddconfig["ch"]),
        ch_mult=tuple(int(m) for m in ddconfig["ch_mult"]),
        num_res_blocks=int(ddconfig["num_res_blocks"]),
        z_channels=int(ddconfig["z_channels"]),
    )


def _open_clip_arch(arch: str, folder: Path, source: Path) -> CLIPArch:
    """ViT-H-14 is built in; any other arch needs an open_clip model json beside the yaml (`<arch>.json`, or the
    one json there that has a `vision_cfg`)."""
    if arch in _KNOWN_OPEN_CLIP:
        return _KNOWN_OPEN_CLIP[arch]
    candidates = [folder / f"{arch}.json"] + sorted(folder.glob("*.json"))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        vision = data.get("vision_cfg") if isinstance(data, dict) else None
        if not vision:
            continue
        width = int(vision["width"])
        head_width = int(vision.get("head_width", 64))
        return CLIPArch(
            width=width,
            layers=int(vision["layers"]),
            heads=width // head_width,
            patch_size=int(vision["patch_size"]),
            image_size=int(vision.get("image_size", 224)),
            embed_dim=int(data["embed_dim"]),
            mlp_ratio=float(vision.get("mlp_ratio", 4.0)),
        )
    raise SVD3DError(
        f"{source}: open_clip arch {arch!r} is not built in (only ViT-H-14); put its open_clip model json "
        f"({arch}.json, with embed_dim and vision_cfg) beside the yaml"
    )


def read_sgm_yaml(path: Path, name: str | None = None) -> SgmArch:
    """Read the network-shaping fields of an sgm sampling config (e.g. scripts/sampling/configs/sv3d_p.yaml)."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise SVD3DError(f"cannot read sgm config {path}: {err}") from err
    params = _get(cfg, "model.params", path)

    net = _get(params, "network_config.params", path)
    if "num_head_channels" not in net or int(net["num_head_channels"]) <= 0:
        raise SVD3DError(f"{path}: network_config needs num_head_channels (num_heads-only configs are unsupported)")
    unet = UNetArch(
        model_channels=int(net["model_channels"]),
        channel_mult=tuple(int(m) for m in net["channel_mult"]),
        attention_resolutions=tuple(int(r) for r in net["attention_resolutions"]),
        num_res_blocks=int(net["num_res_blocks"]),
        num_head_channels=int(net["num_head_channels"]),
        context_dim=int(net["context_dim"]),
        adm_in_channels=int(net["adm_in_channels"]),
        transformer_depth=int(net.get("transformer_depth", 1)),
        in_channels=int(net.get("in_channels", 8)),
        out_channels=int(net.get("out_channels", 4)),
    )

    clip = None
    encoder = None
    vae_index = -1
    vector_fields: list[tuple[str, int]] = []
    for i, emb in enumerate(_get(params, "conditioner_config.params.emb_models", path)):
        cls, p = _cls(emb["target"]), emb.get("params", {}) or {}
        if cls == "FrozenOpenCLIPImagePredictionEmbedder":
            arch = p["open_clip_embedding_config"]["params"].get("arch", "ViT-H-14")
            clip = _open_clip_arch(arch, path.parent, path)
        elif cls == "ConcatTimestepEmbedderND":
            vector_fields.append((str(emb["input_key"]), int(p["outdim"])))
        elif cls == "VideoPredictionEmbedderWithEncoder":
            vae_index = i
            encoder = _vae_arch(p["encoder_config"]["params"]["ddconfig"], path)
        else:
            raise SVD3DError(f"{path}: conditioner embedder {cls} is not supported by svd3d")
    if clip is None or encoder is None:
        raise SVD3DError(f"{path}: the conditioner must have an open_clip image embedder and a VAE image embedder")

    first = _get(params, "first_stage_config.params.decoder_config", path)
    decoder_kind = {"VideoDecoder": "temporal", "Decoder": "image"}.get(_cls(first["target"]))
    if decoder_kind is None:
        raise SVD3DError(f"{path}: first-stage decoder {first['target']} is not supported (VideoDecoder or Decoder)")
    decoder = _vae_arch(first["params"], path)

    sampler = (params.get("sampler_config") or {}).get("params") or {}
    guider = sampler.get("guider_config") or {}
    gparams = guider.get("params") or {}
    schedule = {"LinearPredictionGuider": "linear", "TrianglePredictionGuider": "triangle"}.get(
        _cls(guider.get("target", "")), "constant"
    )
    names = [n for n, _ in vector_fields]
    kind = "video" if "fps_id" in names else "orbit"
    base = RELEASED["svd" if kind == "video" else ("sv3d_p" if "polars_rad" in names else "sv3d_u")]
    sigma_max = float(sampler.get("discretization_config", {}).get("params", {}).get("sigma_max", 700.0))
    info = replace(
        base,
        name=name or path.stem,
        vector_fields=tuple(vector_fields),
        num_frames=int(gparams.get("num_frames", base.num_frames)),
        num_steps=int(sampler.get("num_steps", base.num_steps)),
        guidance=schedule,
        min_guidance=float(gparams.get("min_scale", 1.0)),
        max_guidance=float(gparams.get("max_scale", base.max_guidance)),
        sigma_max=sigma_max,
        decoder=decoder_kind,
    )
    if sum(w for _, w in vector_fields) != unet.adm_in_channels:
        raise SVD3DError(
            f"{path}: the conditioner's vector fields {vector_fields} sum to {sum(w for _, w in vector_fields)} "
            f"but the UNet's adm_in_channels is {unet.adm_in_channels}"
        )
    return SgmArch(
        info=info,
        unet=unet,
        encoder=encoder,
        decoder=decoder,
        clip=clip,
        vae_embedder=vae_index,
        scale_factor=float(params.get("scale_factor", 0.18215)),
    )
