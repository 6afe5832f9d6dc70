"""Training recipes: TOML files read into typed, validated dataclasses. Unknown keys are rejected by name.

A recipe has five sections, and a sixth for LoRA runs (every key optional except where noted; defaults below):

    name = "tiny-orbit"                 # the trained model's name (ModelInfo.name)

    [model]
    kind = "orbit"                      # "video" (fps / motion conditioning) or "orbit" (camera conditioning)
    init = "scratch"                    # "scratch" (a new model, [model.arch]) or a model reference (a path, a
                                        # bundled name, a hub id, an sgm file): its weights start the run; a video
                                        # model turned into an orbit model gets the camera embedding added (SV3D)
    camera = "sv3d_p"                   # orbit models: "sv3d_p" (per-frame polar + azimuth) or "sv3d_u" (none)
    frames = 21                         # frames per clip / orbit
    size = 64                           # square pixel size the model is trained at
    [model.arch]                        # init = "scratch" only: UNet / VAE / CLIP widths (svd3d.models.tiny)
    ...

    [data]
    path = "data/orbits"                # an svd3d dataset folder (svd3d.training.data), or
    generate = "procedural"             # ... one made on first use into <run>/data: procedural | clips
    count = 512                         # objects / clips to generate
    camera = "any"                      # generate = "clips": restrict the camera's motion to one kind: static,
                                        # pan-left / -right / -up / -down, zoom-in / -out (svd3d.training.clips)
    seed = 0
    held_out = 16                       # objects kept out of training (svd3d eval orbit uses them)
    [data.render]                       # generate = "procedural": how objects are shown (OrbitLook; defaults:
    light = "varied"                    # tiny-orbit's): orbits, elevation_range, supersample, light ("headlight" |
    framing = "input"                   # "varied"), material ("matte" | "varied"), framing ("sphere" | "input"),
                                        # object_fraction = [low, high]
    [data.procedural]                   # generate = "procedural": what objects are made of (ProceduralSettings):
    max_parts = 6                       # primitives, patterns, colours ("palette" | "random" | "mixed"),
    deform = 0.3                        # max_parts, deform. Held-out kinds (svd3d eval orbit --family held-out)
                                        # are refused

    [noise]                             # EDM training noise (log-normal sigma) and the model's sampling range
    p_mean = -1.2                       # ln sigma ~ N(p_mean, p_std^2). SVD fine-tuning at 576 px: 0.7 / 1.6;
    p_std = 1.2                         # 32-64 px latents: EDM's -1.2 / 1.2 (the SVD values waste the steps)
    sigma_min = 0.002
    sigma_max = 80.0                    # recorded in the model for sampling (SVD: 700)
    cond_aug_mean = -3.0                # noise augmentation of the conditioning frame: ln s ~ N(mean, std^2);
    cond_aug_std = 0.5                  # cond_aug_std = 0 gives exactly exp(cond_aug_mean)
    cond_dropout = 0.1                  # probability of the unconditional branch (CLIP token + image latent zeroed)

    [optim]
    lr = 1e-4
    weight_decay = 0.01
    betas = [0.9, 0.999]
    warmup = 100                        # linear warm-up steps
    decay = 0                           # linear decay to zero over the last N of train.steps (0: constant LR)
    grad_clip = 1.0                     # max gradient norm (0: off)

    [train]
    steps = 1000
    batch = 8                           # global batch (all processes and accumulation steps together)
    grad_accum = 1
    precision = "no"                    # "no", "bf16" (CPU and GPU) or "fp16" (GPU only)
    gradient_checkpointing = false
    ema_decay = 0.999                   # 0: no EMA (the exported model is then the raw weights)
    save_every = 200                    # checkpoint (exact resume) and exported model every N steps
    keep = 2                            # checkpoints kept
    log_every = 10
    seed = 0
    vae_steps = 0                       # init = "scratch": train the VAE (reconstruction + KL) first, this many steps
    vae_lr = 1e-3
    vae_batch = 4                       # clips per VAE step
    vae_frames = 4                      # frames per clip in the VAE phase
    decoder_steps = 0                   # any init: fine-tune the VAE decoder on this data, encoder frozen (latents,
                                        # so the UNet's training, unchanged): for a VAE that never saw such images

    [lora]                              # present: train a LoRA adapter on top of model.init (frozen) instead of
                                        # the whole UNet; the run exports RUN/adapter (svd3d.models.lora), not a model
    rank = 8                            # r: the rank of each update B @ A
    alpha = 8.0                         # the update is scaled by alpha / rank
    blocks = ["temporal", "spatial"]    # whose attention: the temporal transformer blocks, the spatial ones, or both
    targets = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"]   # projections in each block
                                        # (svd3d.models.lora.PROJECTIONS: also attn2.to_v, attn2.to_out.0)
    dropout = 0.0                       # LoRA dropout on the adapted layers' inputs
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib

from svd3d.errors import SVD3DError
from svd3d.models.lora import PROJECTIONS
from svd3d.training.data import ClipData, OrbitData, OrbitLook
from svd3d.training.procedural import ProceduralSettings


@dataclass(frozen=True)
class ArchSection:
    """Widths of a model built from scratch (see svd3d.models.tiny; the defaults are its tiny model)."""

    unet_channels: int = 64  # at least 64: GroupNorm(32) over 32 channels erases the time / vector embedding
    unet_mult: tuple[int, ...] = (1, 1, 1)
    unet_blocks: int = 1
    attention_levels: tuple[int, ...] = (1, 2)  # which levels (0 = finest) have spatial + temporal attention
    head_channels: int = 32
    context_dim: int = 32  # CLIP projection width
    vae_channels: tuple[int, ...] = (32, 32, 32, 32)  # one entry per level; len - 1 halvings of the image
    vae_blocks: int = 2
    clip_width: int = 48
    clip_layers: int = 2
    clip_heads: int = 3


@dataclass(frozen=True)
class ModelSection:
    kind: Literal["video", "orbit"] = "orbit"
    init: str = "scratch"
    camera: Literal["sv3d_p", "sv3d_u"] = "sv3d_p"
    frames: int = 21
    size: int = 64
    arch: ArchSection = field(default_factory=ArchSection)


@dataclass(frozen=True)
class DataSection:
    path: str = ""
    generate: Literal["", "procedural", "clips"] = ""
    count: int = 256
    camera: Literal["any", "static", "pan-left", "pan-right", "pan-up", "pan-down", "zoom-in", "zoom-out"] = "any"
    seed: int = 0
    held_out: int = 0
    render: OrbitLook = field(default_factory=OrbitLook)  # generate = "procedural": how objects are shown
    procedural: ProceduralSettings = field(default_factory=ProceduralSettings)  # ... and what they are made of


@dataclass(frozen=True)
class NoiseSection:
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    cond_aug_mean: float = -3.0
    cond_aug_std: float = 0.5
    cond_dropout: float = 0.1


@dataclass(frozen=True)
class OptimSection:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 100
    decay: int = 0
    grad_clip: float = 1.0


@dataclass(frozen=True)
class TrainSection:
    steps: int = 1000
    batch: int = 8
    grad_accum: int = 1
    precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    ema_decay: float = 0.999
    save_every: int = 200
    keep: int = 2
    log_every: int = 10
    seed: int = 0
    vae_steps: int = 0
    vae_lr: float = 1e-3
    vae_batch: int = 4  # clips per VAE step (all processes together)
    vae_frames: int = 4  # consecutive frames per clip in the VAE phase (a temporal decoder sees them as a clip)
    decoder_steps: int = 0  # fine-tune the VAE decoder (encoder frozen) on the data, vae_batch x vae_frames, vae_lr


@dataclass(frozen=True)
class LoraSection:
    rank: int = 8
    alpha: float = 8.0
    blocks: tuple[Literal["temporal", "spatial"], ...] = ("temporal", "spatial")
    targets: tuple[str, ...] = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0")
    dropout: float = 0.0


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    noise: NoiseSection = field(default_factory=NoiseSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    lora: LoraSection | None = None  # a [lora] table: train an adapter on a frozen model.init
    source: str = ""  # the file it was read from (its folder resolves relative data paths)

    def to_dict(self) -> dict:
        """Plain TOML-able values (tuples as lists), for run records and checkpoints."""
        return _plain(self)


def _plain(value):
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _convert(cls, data: Any, where: str):
    """Build dataclass `cls` from a TOML table, checking every key and type; `where` names the table in errors."""
    if not isinstance(data, dict):
        raise SVD3DError(f"[{where}] must be a table, got {data!r}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SVD3DError(
            f"unknown key(s) {', '.join(repr(k) for k in unknown)} in [{where}]; known keys: {', '.join(known)}"
        )
    values = {}
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise SVD3DError(f"[{where}] needs the key {name!r}")
            continue
        values[name] = _value(hints[name], data[name], f"{where}.{name}" if where != "recipe" else name)
    return cls(**values)


def _value(hint, value, where: str):
    origin = get_origin(hint)
    if origin in (Union, UnionType):  # `X | None`: an optional table (JSON null in a run's recipe.json)
        if value is None:
            return None
        return _value(next(a for a in get_args(hint) if a is not NoneType), value, where)
    if is_dataclass(hint):
        return _convert(hint, value, where)
    if origin is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(a) for a in get_args(hint))
            raise SVD3DError(f"{where} = {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SVD3DError(f"{where} must be a list, got {value!r}")
        args = get_args(hint)
        item = args[0]
        if len(args) == 2 and args[1] is not Ellipsis:
            if len(value) != 2:
                raise SVD3DError(f"{where} must have 2 entries, got {value!r}")
        return tuple(_value(item, v, where) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise SVD3DError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SVD3DError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SVD3DError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SVD3DError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported recipe type {hint} at {where}")  # a programming error, not user input


def check_recipe(recipe: Recipe) -> Recipe:
    """Range checks that types cannot express; returns the recipe."""
    m, d, n, o, t = recipe.model, recipe.data, recipe.noise, recipe.optim, recipe.train
    rules = [
        (m.frames >= 1, f"model.frames must be >= 1, got {m.frames}"),
        (m.size >= 8 and m.size % 8 == 0, f"model.size must be a multiple of 8 (>= 8), got {m.size}"),
        (bool(d.path) != bool(d.generate), "[data] needs exactly one of path (a dataset folder) or generate"),
        (d.count >= 1 and d.held_out >= 0, f"data.count must be >= 1 and held_out >= 0, got {d.count}, {d.held_out}"),
        (n.p_std > 0 and 0 < n.sigma_min < n.sigma_max, "noise: need p_std > 0 and 0 < sigma_min < sigma_max"),
        (n.cond_aug_std >= 0 and 0 <= n.cond_dropout < 1, "noise: need cond_aug_std >= 0, 0 <= cond_dropout < 1"),
        (
            o.lr > 0 and o.warmup >= 0 and o.decay >= 0 and o.grad_clip >= 0,
            "optim: need lr > 0, warmup >= 0, decay >= 0, grad_clip >= 0",
        ),
        (t.steps >= 1 and t.batch >= 1 and t.grad_accum >= 1, "train: steps, batch and grad_accum must be >= 1"),
        (t.batch % t.grad_accum == 0, f"train.batch {t.batch} must be divisible by train.grad_accum {t.grad_accum}"),
        (0 <= t.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {t.ema_decay}"),
        (t.save_every >= 1 and t.keep >= 1 and t.log_every >= 1, "train: save_every, keep, log_every must be >= 1"),
        (t.vae_steps >= 0, f"train.vae_steps must be >= 0, got {t.vae_steps}"),
        (t.decoder_steps >= 0, f"train.decoder_steps must be >= 0, got {t.decoder_steps}"),
        (t.vae_batch >= 1 and t.vae_frames >= 1, "train.vae_batch and train.vae_frames must be >= 1"),
        (t.vae_steps == 0 or m.init == "scratch", "train.vae_steps needs model.init = 'scratch'"),
        (m.arch.unet_channels >= 64, f"model.arch.unet_channels must be >= 64, got {m.arch.unet_channels}"),
        (m.size % (2 ** (len(m.arch.vae_channels) - 1)) == 0 or m.init != "scratch",
         f"model.size {m.size} must be divisible by the VAE's downsampling {2 ** (len(m.arch.vae_channels) - 1)}"),
    ]  # fmt: skip
    for ok, message in rules:
        if not ok:
            raise SVD3DError(f"recipe {recipe.name!r}: {message}")
    if d.generate != "procedural" and (d.render != OrbitLook() or d.procedural != ProceduralSettings()):
        raise SVD3DError(f"recipe {recipe.name!r}: [data.render] and [data.procedural] choose how generate = "
                         "'procedural' makes objects; for a dataset folder choose them when building it "
                         "(svd3d data procedural / meshes --light ... --framing ...)")  # fmt: skip
    for where, section in (("data.render", d.render), ("data.procedural", d.procedural)):
        try:
            section.check()
        except SVD3DError as err:
            raise SVD3DError(f"recipe {recipe.name!r}: {where}: {err}") from None
    if d.camera != "any" and d.generate != "clips":
        raise SVD3DError(f"recipe {recipe.name!r}: data.camera = {d.camera!r} restricts generated clips; it needs "
                         "data.generate = 'clips'")  # fmt: skip
    if recipe.lora is not None:
        check_lora(recipe)
    generated_kind = {"procedural": "orbit", "clips": "video"}.get(d.generate)
    if generated_kind and generated_kind != m.kind:
        raise SVD3DError(f"recipe {recipe.name!r}: data.generate = {d.generate!r} makes {generated_kind} data, "
                         f"but model.kind is {m.kind!r}")  # fmt: skip
    return recipe


def check_lora(recipe: Recipe) -> None:
    """A LoRA recipe adapts a trained model (frozen): it names one, and trains nothing else."""
    lo, m, t = recipe.lora, recipe.model, recipe.train
    rules = [
        (m.init != "scratch", "a [lora] recipe trains an adapter on a trained model: set model.init (e.g. tiny-video)"),
        (lo.rank >= 1, f"lora.rank must be >= 1, got {lo.rank}"),
        (lo.alpha > 0, f"lora.alpha must be > 0, got {lo.alpha}"),
        (0 <= lo.dropout < 1, f"lora.dropout must be in [0, 1), got {lo.dropout}"),
        (len(lo.blocks) >= 1 and len(set(lo.blocks)) == len(lo.blocks),
         f"lora.blocks must name temporal, spatial or both, once each; got {list(lo.blocks)}"),
        (len(lo.targets) >= 1 and len(set(lo.targets)) == len(lo.targets),
         f"lora.targets must name projections once each; got {list(lo.targets)}"),
        (t.vae_steps == 0 and t.decoder_steps == 0,
         "a [lora] recipe leaves the base model's VAE as it is: train.vae_steps and train.decoder_steps must be 0"),
    ]  # fmt: skip
    for ok, message in rules:
        if not ok:
            raise SVD3DError(f"recipe {recipe.name!r}: {message}")
    bad = [target for target in lo.targets if target not in PROJECTIONS]
    if bad:
        raise SVD3DError(f"recipe {recipe.name!r}: lora.targets {bad} are not attention projections svd3d adapts; "
                         f"choose from {', '.join(PROJECTIONS)} (attn2's to_q / to_k see one token: no effect)")  # fmt: skip


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe TOML (plus `overrides`: {"train.steps": 2, ...}) into a checked Recipe."""
    path = Path(path)
    if not path.is_file():
        raise SVD3DError(f"recipe {path} does not exist; the bundled recipes are in recipes/ (e.g. recipes/debug.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SVD3DError(f"recipe {path} is not valid TOML: {err}") from None
    for key, value in (overrides or {}).items():
        table = data
        *parents, leaf = key.split(".")
        for p in parents:
            table = table.setdefault(p, {})
        table[leaf] = value
    data.setdefault("name", path.stem)
    recipe = _convert(Recipe, data, "recipe")
    return check_recipe(Recipe(**{**{f.name: getattr(recipe, f.name) for f in fields(Recipe)}, "source": str(path)}))


def recipe_from_dict(data: dict, source: str = "") -> Recipe:
    """A checked Recipe from `Recipe.to_dict()` output (a run's recipe.json, a checkpoint's state.json)."""
    source = source or str(data.get("source", ""))
    recipe = _convert(Recipe, {k: v for k, v in data.items() if k != "source"}, "recipe")
    return check_recipe(Recipe(**{**{f.name: getattr(recipe, f.name) for f in fields(Recipe)}, "source": source}))


def parse_override(text: str) -> tuple[str, Any]:
    """'train.steps=2' -> ('train.steps', 2): the value is read as TOML (strings may be bare)."""
    if "=" not in text:
        raise SVD3DError(f"--set {text!r} must look like section.key=value, e.g. train.steps=2")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def data_folder(recipe: Recipe) -> Path | None:
    """The dataset folder a recipe's data.path names (relative paths: beside the recipe file when there, else from
    the working directory); None for generated data."""
    if recipe.data.generate:
        return None
    folder = Path(recipe.data.path)
    if not folder.is_absolute() and recipe.source:
        beside = Path(recipe.source).parent / folder
        folder = beside if beside.exists() else folder
    return folder


def check_data(recipe: Recipe) -> None:
    """Check a recipe's dataset folder before a run writes anything: it exists, is a dataset of the model's kind
    (its manifest and array shapes; the arrays are memory-mapped, not read) and leaves objects to train on."""
    folder = data_folder(recipe)
    if folder is None:
        return
    data = (OrbitData if recipe.model.kind == "orbit" else ClipData).load(folder)
    objects = len(data.objects())
    if recipe.data.held_out >= objects:
        raise SVD3DError(
            f"data.held_out = {recipe.data.held_out} leaves nothing to train on ({objects} objects in {folder}); "
            "lower it or use a larger dataset"
        )
