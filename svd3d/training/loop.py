"""`svd3d train RECIPE -o RUN`: the SVD training loop, one readable function (`train`), on one CPU, N GPUs or
several nodes through accelerate (`accelerate launch -m svd3d train ...` for more than one process).

Per step (global batch B = processes x grad_accum x micro-batch):
  1. one generator seeded by (train.seed, step) draws the whole global batch: which objects / clips, sigma
     (log-normal), latent noise, the conditioning frame's noise level and noise, condition dropout. Every process
     draws the same numbers and takes its own slice, so 1 or N processes with the same global batch follow the same
     trajectory, and a resumed run continues exactly;
  2. the clean latents come from a cache encoded once by the frozen VAE (scaled by its factor; kept in RUN/cache,
     keyed by the encoder weights and the data, so a resume skips the encoding); the conditioning latent is
     encoded each step from the noise-augmented first frame (unscaled VAE mode: svd3d.core.vae.encode_condition);
     CLIP embeds the clean first frame (cached);
  3. the per-frame vector (svd3d.core.vectors): cond_aug ‖ polar ‖ azimuth in the model's frame order (orbit
     models), or fps - 1 ‖ motion bucket ‖ cond_aug (video models);
  4. loss = EDM-weighted v-prediction MSE (svd3d.training.objective), averaged over the global batch; AdamW with
     linear warm-up (and optionally a linear decay to zero at the end), gradient clipping, an EMA of the weights;
  5. every save_every steps: a checkpoint (exact resume) and the EMA model exported as RUN/model.

A recipe with a [lora] table trains a LoRA adapter instead (svd3d.models.lora): model.init is loaded and frozen,
PEFT LoRA layers are added to the chosen attention projections (B = 0, so step 0 is the base model), and only
they train, with the same objective, draws, optimiser and EMA; checkpoints hold the adapter's tensors, and the
run exports RUN/adapter (PEFT's file format, with a card) instead of RUN/model. LoRA dropout draws from the
global generator, seeded per step from (train.seed, step), so a resumed LoRA run is exact too.

Models trained from scratch first train their VAE (reconstruction + a small KL term) for train.vae_steps; the CLIP
tower of a scratch model stays at its seeded random weights (a fixed random-feature encoder: the image latent
carries the picture; the token adds a global summary) and is saved with the model.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from svd3d import outputs
from svd3d.cameras import model_order
from svd3d.core.clip import encode_clip
from svd3d.core.conditioning import Conditioning
from svd3d.core.vae import decoder_takes_frames, encode_condition, latent_factor
from svd3d.core.vectors import orbit_vector, video_vector
from svd3d.errors import SVD3DError
from svd3d.media import write_json
from svd3d.models.attention import dead_cross_attention_parameters, use_single_key_cross_attention
from svd3d.models.bundle import SVDModel
from svd3d.models.lora import (
    ADAPTER_FILE,
    add_lora,
    config_dict,
    lora_state,
    lora_target_modules,
    peft_file_tensors,
    save_adapter,
)
from svd3d.outputs import atomic_file
from svd3d.runinfo import command_line, versions
from svd3d.training.checkpoint import export_model, list_checkpoints, load_checkpoint, save_checkpoint
from svd3d.training.clips import synthetic_clips
from svd3d.training.data import ClipData, OrbitData, RenderOrbitSettings
from svd3d.training.init_models import initial_model
from svd3d.training.objective import diffusion_loss, draw_noise, drop_conditioning
from svd3d.training.procedural import procedural_orbit_dataset
from svd3d.training.recipe import Recipe, check_data, data_folder, load_recipe

log = logging.getLogger(__name__)

ENCODE_BATCH = 64  # frames per VAE / CLIP call while caching


@dataclass
class TrainResult:
    run: Path
    model_dir: Path  # RUN/model: the exported (EMA) model; RUN/adapter for a LoRA recipe
    step: int  # the last step trained
    losses: list[float]  # loss of every step trained in this call, in order
    seconds: float
    steps_per_second: float  # of the steps trained in this call (UNet phase only)


@dataclass
class _Data:
    """Everything the loop needs per object / clip, on the CPU, in the model's frame order."""

    latents: torch.Tensor  # (N, T, C, h, w) float32, scaled by the VAE's factor
    first: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]: the conditioning frame
    clip: torch.Tensor  # (N, 1, D) CLIP embeds of the clean first frame
    vector: torch.Tensor  # (N, T, F) raw vector values with cond_aug = 0 (filled in per step)
    cond_aug_column: int  # which vector column is cond_aug


# ------------------------------------------------------------------------------------------------ helpers


def _accelerator(precision: str, device: str):
    """This process's accelerate state. Gradient accumulation is the loop's own (train.grad_accum micro-batches per
    optimiser step, gradients synced on the last, each loss divided by grad_accum), so accelerate is told 1: its
    gradient_accumulation_steps would divide every loss in `accelerator.backward` a second time."""
    try:
        from accelerate import Accelerator
    except ImportError:
        raise SVD3DError("training needs accelerate: pip install 'svd3d[train]'") from None
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if precision == "fp16" and cpu:
        raise SVD3DError("train.precision = 'fp16' needs a GPU; on the CPU use 'bf16' or 'no'")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # a second train() in one process may ask for another precision
    return Accelerator(
        cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=1, step_scheduler_with_optimizer=False
    )


def _load_data(recipe: Recipe, run: Path, is_main: bool, wait):
    """The training split (and, once, RUN/held_out) of the recipe's dataset: loaded, or generated into RUN/data."""
    d, m = recipe.data, recipe.model
    if d.generate:
        folder = run / "data"
        if is_main and not (folder / "manifest.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            log.info("generating %d %s samples into %s", d.count, d.generate, folder)
            if d.generate == "procedural":
                look = {f.name: getattr(d.render, f.name) for f in fields(d.render)}
                settings = RenderOrbitSettings(size=m.size, frames=m.frames, **look)
                procedural_orbit_dataset(d.count, folder, settings=settings, generator=d.procedural, seed=d.seed)
            else:
                synthetic_clips(d.count, size=m.size, frames=m.frames, seed=d.seed, camera=d.camera).save(folder)
        wait()
    else:
        folder = data_folder(recipe)
    data = (OrbitData if m.kind == "orbit" else ClipData).load(folder)
    if d.held_out:
        objects = len(data.objects())
        if d.held_out >= objects:
            raise SVD3DError(f"data.held_out = {d.held_out} leaves nothing to train on ({objects} objects in {folder})")
        data, held = data.split(d.held_out, d.seed)
        if is_main and not (run / "held_out" / "manifest.json").is_file():
            held.save(run / "held_out")
        wait()
    return data


def frames_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """(M, H, W, 3) uint8 -> (M, 3, size, size) float32 in [-1, 1] (area-resized when the size differs)."""
    x = torch.from_numpy(np.array(frames, dtype=np.float32)).permute(0, 3, 1, 2) / 127.5 - 1.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def _vectors(model: SVDModel, data, perm: np.ndarray) -> tuple[torch.Tensor, int]:
    """(N, T, F) raw vector values per sample and frame in model order (cond_aug 0), and the cond_aug column."""
    names = model.unet.vector_names
    if "cond_aug" not in names:
        raise SVD3DError(f"model vector fields {names} lack cond_aug; svd3d trains SVD / SV3D layouts only")
    if model.info.kind == "orbit":
        rows = [
            orbit_vector(names, data.elevations[i], data.azimuths[i], perm, 0.0, model.info.azimuth_sign)
            for i in range(len(data))
        ]
        vector = torch.stack(rows)
    else:
        vector = video_vector(names, data.fps, data.motion, 0.0, len(perm))
    return vector.contiguous().float(), names.index("cond_aug")


def encoding_key(model: SVDModel, data, frames: int, size: int, perm: np.ndarray) -> str:
    """A fingerprint of what the encoded caches depend on: the VAE encoder and CLIP weights, the frame selection
    and size, and the data (names, shape, source, and the pixels of up to 64 samples spread over it)."""
    h = hashlib.sha256()
    h.update(json.dumps([frames, size, perm.tolist(), list(data.names), list(data.shape), data.source],
                        sort_keys=True, default=str).encode())  # fmt: skip
    encoder = {f"vae.{k}": v for k, v in model.vae.state_dict().items() if not k.startswith(("decoder.", "post_quant"))}
    encoder.update({f"clip.{k}": v for k, v in model.image_encoder.state_dict().items()})
    for key in sorted(encoder):
        h.update(key.encode())
        h.update(encoder[key].detach().float().cpu().contiguous().numpy().tobytes())
    for i in np.linspace(0, len(data) - 1, min(64, len(data))).astype(int):
        h.update(np.ascontiguousarray(data.frames[i, :frames]).tobytes())
    return h.hexdigest()[:20]


@torch.no_grad()
def _encode_data(model: SVDModel, data, frames: int, size: int, device, cache_dir: Path | None = None) -> _Data:
    """Encode every frame once with the frozen VAE and every first frame with CLIP (the loop's caches).

    With `cache_dir`, the latents and CLIP embeds are kept there as encoded-<key>.safetensors, the key fingerprinting
    the encoder weights and the data (`encoding_key`), so a resumed run skips the encoding. The decoder phase does
    not change the key: it leaves the encoder, so the latents, as they are."""
    total = data.frames.shape[1]
    if model.info.kind == "orbit" and total != frames:
        raise SVD3DError(f"the orbit dataset has {total} views per object but model.frames is {frames}; match them")
    if total < frames:
        raise SVD3DError(f"the clips have {total} frames, fewer than model.frames = {frames}")
    perm = model_order(frames, model.info.frame_order) if model.info.kind == "orbit" else np.arange(frames)
    firsts = torch.cat([frames_tensor(data.frames[s : s + ENCODE_BATCH, 0], size)
                        for s in range(0, len(data), ENCODE_BATCH)])  # fmt: skip
    vector, column = _vectors(model, data, perm)
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"encoded-{encoding_key(model, data, frames, size, perm)}.safetensors"
        if cached.is_file():
            tensors = load_file(str(cached))
            log.info("encoded latents and CLIP embeds from %s", cached)
            return _Data(tensors["latents"], firsts, tensors["clip"], vector, column)
    vae, clip = model.vae.to(device).eval(), model.image_encoder.to(device).eval()
    scale = model.scaling_factor
    latents, embeds = [], []
    for i in range(len(data)):
        pixels = frames_tensor(data.frames[i, :frames][perm], size)  # (T, 3, S, S) in model order
        chunks = [vae.encode(pixels[s : s + ENCODE_BATCH].to(device)).latent_dist.mode() * scale
                  for s in range(0, frames, ENCODE_BATCH)]  # fmt: skip
        latents.append(torch.cat(chunks).float().cpu())
    for s in range(0, len(data), ENCODE_BATCH):
        embeds.append(encode_clip(clip, firsts[s : s + ENCODE_BATCH].to(device)).float().cpu())
    encoded = _Data(torch.stack(latents), firsts, torch.cat(embeds), vector, column)
    if cached is not None:
        for old in cached.parent.glob("encoded-*.safetensors"):  # another encoder or data: stale
            if old != cached:
                old.unlink(missing_ok=True)
        with atomic_file(cached) as tmp:
            save_file({"latents": encoded.latents.contiguous(), "clip": encoded.clip.contiguous()}, str(tmp))
    return encoded


def lr_factor(step: int, warmup: int, steps: int, decay: int) -> float:
    """The LR multiplier after `step` optimiser steps: linear warm-up over `warmup` steps, constant, then a
    linear decay to zero over the last `decay` of `steps` (0: none)."""
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if decay > 0:
        factor *= min(1.0, max(0.0, (steps - step) / decay))
    return factor


def _generator(seed: int, step: int, phase: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 7 + phase) % (2**63))


# ------------------------------------------------------------------------------------------------ the VAE phase


ENCODER_PREFIXES = ("encoder.", "quant_conv.")  # the VAE's encoder side; the rest decodes


class _AutoEncoder(torch.nn.Module):
    """The VAE as one module whose forward is a training pass (so DDP sees it): reconstruction MSE + 1e-6 KL.
    decoder_only: the encoder runs without gradients (it is frozen) and only the reconstruction counts."""

    def __init__(self, vae, num_frames: int | None, decoder_only: bool = False):
        super().__init__()
        self.vae, self.num_frames, self.decoder_only = vae, num_frames, decoder_only

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        with torch.no_grad() if self.decoder_only else contextlib.nullcontext():
            posterior = self.vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * eps.to(posterior.mean.dtype)
        kwargs = {"num_frames": self.num_frames} if self.num_frames else {}
        recon = self.vae.decode(z, **kwargs).sample
        if self.decoder_only:
            return F.mse_loss(recon.float(), x)
        return F.mse_loss(recon.float(), x) + 1e-6 * posterior.kl().mean()


def _train_vae(
    recipe: Recipe, model: SVDModel, data, accelerator, progress: bool, decoder_only: bool = False
) -> list[float]:
    """Fit the VAE to the data's frames, train.vae_batch clips of train.vae_frames consecutive frames per step (a
    temporal decoder sees them as clips), lr train.vae_lr.

    Scratch models (train.vae_steps): the whole VAE, MSE reconstruction + 1e-6 KL. decoder_only
    (train.decoder_steps): only the decoder, the encoder frozen, so every latent the UNet is trained on stays
    exactly as it was: for a VAE trained on other images (tiny-orbit's, from tiny-video, never saw white
    backgrounds and reconstructs orbit views at 14 dB)."""
    t, m = recipe.train, recipe.model
    steps, phase = (t.decoder_steps, 2) if decoder_only else (t.vae_steps, 1)
    clip_frames = min(data.frames.shape[1], t.vae_frames)
    batch = t.vae_batch
    factor = latent_factor(model.vae)
    latent = (model.vae.config.latent_channels, m.size // factor, m.size // factor)
    model.vae.train().requires_grad_(True)
    if decoder_only:
        for name, p in model.vae.named_parameters():
            p.requires_grad_(not name.startswith(ENCODER_PREFIXES))
    module = _AutoEncoder(model.vae, clip_frames if decoder_takes_frames(model.vae) else None, decoder_only)
    params = [p for p in model.vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.vae_lr, weight_decay=0.0)
    module, optimizer = accelerator.prepare(module, optimizer)
    per_rank = _share(batch, accelerator.num_processes)
    mine = slice(accelerator.process_index * per_rank, (accelerator.process_index + 1) * per_rank)
    losses = []
    desc = "decoder" if decoder_only else "vae"
    for step in tqdm(range(steps), desc=desc, disable=not (progress and accelerator.is_main_process)):
        g = _generator(t.seed, step, phase=phase)
        index = torch.randint(len(data), (batch,), generator=g)
        start = torch.randint(data.frames.shape[1] - clip_frames + 1, (batch,), generator=g)
        eps = torch.randn(batch * clip_frames, *latent, generator=g)
        clips = np.stack(
            [data.frames[int(i), int(s) : int(s) + clip_frames] for i, s in zip(index[mine], start[mine], strict=True)]
        )
        x = frames_tensor(clips.reshape(-1, *clips.shape[2:]), m.size).to(accelerator.device)
        e = eps[mine.start * clip_frames : mine.stop * clip_frames].to(accelerator.device)
        with accelerator.autocast():
            loss = module(x, e)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        losses.append(float(accelerator.reduce(loss.detach(), "mean")))
    model.vae = accelerator.unwrap_model(module).vae.eval().requires_grad_(False)
    return losses


def _share(batch: int, world: int) -> int:
    if batch % world:
        raise SVD3DError(f"train.batch {batch} must be divisible by the number of processes ({world})")
    return batch // world


# ------------------------------------------------------------------------------------------------ the loop


def _main_process_output(args: dict):
    """The run folder is locked by the main process only (rank 0 under accelerate / torchrun): the others write
    into the same folder as part of the same job."""
    return args["out"] if int(os.environ.get("RANK", "0")) == 0 else None


@outputs.holds_output(_main_process_output)
def train(
    recipe: str | Path | Recipe,
    out: str | Path,
    *,
    overrides: dict | None = None,
    device: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a recipe into the run folder `out`, resuming from its newest checkpoint when there is one.

    stop_after: train at most this many steps in this call (then save and return) — for time-boxed sessions; 0
    runs only the phases not yet done (the decoder phase), then saves and exports."""
    started = time.perf_counter()

    # 1. the recipe, the run folder, the processes
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    run = Path(out)
    outputs.check_resumable(run, "train")  # new, empty, or an svd3d training run (resumed)
    t, o, n, m = recipe.train, recipe.optim, recipe.noise, recipe.model
    accelerator = _accelerator(t.precision, device)
    is_main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    per_rank = _share(t.batch, world)
    if per_rank % t.grad_accum:
        raise SVD3DError(
            f"train.batch {t.batch} / {world} processes must be divisible by train.grad_accum {t.grad_accum}"
        )
    micro = per_rank // t.grad_accum
    checkpoints = list_checkpoints(run)
    if checkpoints:
        saved = json.loads((checkpoints[-1].folder / "state.json").read_text()).get("recipe", {})
        changed = sorted(k for k in recipe.to_dict() if k != "train" and saved.get(k) != recipe.to_dict()[k])
        if changed:
            log.warning("resuming %s with a recipe whose %s differ from the run's", run, ", ".join(changed))
    check_data(recipe)  # a bad dataset fails here, before the run folder and its recipe.json are written
    if is_main:
        outputs.start_run(run, "train")
        (run / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    accelerator.wait_for_everyone()

    # 2. data and the starting model
    data = _load_data(recipe, run, is_main, accelerator.wait_for_everyone)
    model = initial_model(recipe)
    lora, lora_config = recipe.lora, None
    if lora is not None:  # the base frozen, LoRA layers (B = 0) on the chosen projections
        modules = lora_target_modules(model.unet, lora.blocks, lora.targets)
        lora_config = add_lora(model.unet, modules, lora.rank, lora.alpha, lora.dropout, seed=t.seed)
        log.info("LoRA rank %d on %d projections of %s (frozen)", lora.rank, len(modules), m.init)
    trained_name = "unet" if lora is None else "lora"  # the checkpoint file of what trains
    step, losses, spent = 0, [], 0.0  # spent: compute seconds of earlier calls (from the checkpoint)
    if checkpoints:
        tensors, optimizer_state, state = load_checkpoint(checkpoints[-1].folder)
        step, spent = int(state["step"]), float(state.get("compute_seconds", 0.0))
        for name in ("vae", "image_encoder"):
            if name in tensors:
                getattr(model, name).load_state_dict(tensors[name])
        if trained_name not in tensors:
            raise SVD3DError(f"checkpoint {checkpoints[-1].folder} holds no {trained_name}.safetensors: it is not a "
                             f"{'LoRA' if lora else 'UNet'} run's; train into a new folder")  # fmt: skip
        _load_trained(model.unet, tensors[trained_name], lora is not None)
        log.info("resuming %s from step %d", run, step)
    elif t.vae_steps:
        vae_losses = _train_vae(recipe, model, data, accelerator, progress)
        log.info("VAE: %d steps, loss %.4f -> %.4f", t.vae_steps, vae_losses[0], vae_losses[-1])
        optimizer_state, tensors, state = None, {}, {}
    else:
        optimizer_state, tensors, state = None, {}, {}
    # the decoder phase: once per run (a resumed run whose recipe newly asks for it runs it then: the encoder is
    # frozen, so the latents the UNet trained on so far are unchanged)
    decoder_done = int(state.get("decoder_steps", 0)) if "vae" in tensors else 0
    if t.decoder_steps and decoder_done != t.decoder_steps:
        dec_losses = _train_vae(recipe, model, data, accelerator, progress, decoder_only=True)
        log.info("decoder: %d steps, loss %.4f -> %.4f", t.decoder_steps, dec_losses[0], dec_losses[-1])
        decoder_done = t.decoder_steps
    last = t.steps if stop_after is None else min(t.steps, step + stop_after)
    dev = accelerator.device
    if step < last:
        cache = _encode_data(model, data, m.frames, m.size, dev, run / "cache" if is_main else None)
    else:  # nothing left to train in this call (e.g. --stop-after 0 after the decoder phase): no latents needed
        cache = None
    vae = model.vae.to(dev).eval().requires_grad_(False)
    model.image_encoder.to("cpu")

    # 3. the trained network (the UNet, or its LoRA layers), its optimiser, LR schedule and EMA
    unet = model.unet.train()
    use_single_key_cross_attention(unet)  # exact, ~17% faster steps; its dead query / key weights are frozen
    if lora is None:
        unet.requires_grad_(True)
        for p in dead_cross_attention_parameters(unet):
            p.requires_grad_(False)
    if t.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    trained = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(i, o.warmup, t.steps, o.decay))
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state["optimizer"])
        schedule.load_state_dict(optimizer_state["schedule"])

    def trained_state(module) -> dict[str, torch.Tensor]:
        return module.state_dict() if lora is None else lora_state(module)

    ema = None
    if t.ema_decay > 0:
        ema = {k: v.detach().float().clone() for k, v in trained_state(unet).items()}
        if "ema" in tensors:
            ema = {k: v.float() for k, v in tensors["ema"].items()}
    unet, optimizer = accelerator.prepare(unet, optimizer)
    raw_unet = accelerator.unwrap_model(unet)

    def net(x_in, c_noise, cond: Conditioning):
        return unet(x_in, c_noise, encoder_hidden_states=cond.clip_embeds, added_time_ids=cond.vector,
                    return_dict=False)[0]  # fmt: skip

    def save(at_step: int) -> None:
        if is_main:
            weights = {trained_name: trained_state(raw_unet)}
            if ema is not None:
                weights["ema"] = ema
            if m.init == "scratch" or decoder_done:
                weights["vae"] = model.vae.state_dict()
            if m.init == "scratch":
                weights["image_encoder"] = model.image_encoder.state_dict()
            opt = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
            compute = spent + time.perf_counter() - started
            record = {"recipe": recipe.to_dict(), "compute_seconds": round(compute, 1), "device": str(dev),
                      "processes": world, "loss": losses[-1] if losses else state.get("loss"),
                      "decoder_steps": decoder_done}  # fmt: skip
            save_checkpoint(run, at_step, weights, opt, record, t.keep)
            if lora is None:
                _export(model, raw_unet, ema, run / "model")
                (run / "model" / "README.md").write_text(model_card(recipe, model, at_step, record, data))
            else:
                final = ema if ema is not None else trained_state(raw_unet)
                _export_adapter(run / "adapter", final, lora_config, recipe, model, at_step, record, data)
        accelerator.wait_for_everyone()

    if is_main:
        _truncate_log(run / "log.jsonl", step)
    exported = run / ("model" if lora is None else "adapter")
    if cache is None:  # nothing to train: save what the phases above changed, export, return
        save(step)
        accelerator.wait_for_everyone()
        return TrainResult(run, exported, step, losses, time.perf_counter() - started, 0.0)
    latent_shape = tuple(cache.latents.shape[1:])
    image_shape = tuple(cache.first.shape[1:])
    bar = tqdm(total=t.steps, initial=step, desc="train", unit="step", disable=not (progress and is_main))
    loop_started, first_step = time.perf_counter(), step

    # 4. the steps
    while step < last:
        g = _generator(t.seed, step)
        index = torch.randint(len(data), (t.batch,), generator=g)
        draw = draw_noise(g, t.batch, latent_shape, image_shape, p_mean=n.p_mean, p_std=n.p_std,
                          cond_aug_mean=n.cond_aug_mean, cond_aug_std=n.cond_aug_std, cond_dropout=n.cond_dropout)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        if lora is not None and lora.dropout > 0:  # LoRA dropout draws from the global generator: seed it per step
            torch.manual_seed(_generator(t.seed, step, phase=3).initial_seed())
        total = torch.zeros((), device=dev)
        for k in range(t.grad_accum):
            lo = rank * per_rank + k * micro
            idx, d = index[lo : lo + micro], draw.slice(lo, lo + micro)
            with torch.no_grad():
                first = cache.first[idx].to(dev)
                concat = encode_condition(vae, first + d.cond_aug.to(dev).view(-1, 1, 1, 1) * d.cond_noise.to(dev))
                vector = cache.vector[idx].clone()
                vector[..., cache.cond_aug_column] = d.cond_aug[:, None]
            cond = drop_conditioning(
                Conditioning(cache.clip[idx].to(dev), concat.float(), vector.to(dev)), d.drop.to(dev)
            )
            sync = accelerator.no_sync(unet) if k < t.grad_accum - 1 else contextlib.nullcontext()
            with sync, accelerator.autocast():
                loss = diffusion_loss(net, cache.latents[idx].to(dev), cond, d.sigma, d.noise.to(dev)).mean()
                accelerator.backward(loss / t.grad_accum)
            total += loss.detach() / t.grad_accum
        if o.grad_clip > 0:
            accelerator.clip_grad_norm_(trained, o.grad_clip)
        optimizer.step()
        schedule.step()
        step += 1
        if ema is not None:
            decay = min(t.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for key, value in trained_state(raw_unet).items():
                    ema[key].lerp_(value.detach().float(), 1 - decay)
        loss_value = float(accelerator.reduce(total, "mean"))
        losses.append(loss_value)
        if not math.isfinite(loss_value):
            raise SVD3DError(f"the loss became {loss_value} at step {step}; lower optim.lr or use precision 'no'")
        if is_main:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            with open(run / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "loss": loss_value, "lr": schedule.get_last_lr()[0],
                                    "seconds": round(spent + time.perf_counter() - started, 3)}) + "\n")  # fmt: skip
            if step % t.log_every == 0:
                log.info("step %d loss %.4f", step, loss_value)
        if step % t.save_every == 0 or step == last:
            save(step)
    bar.close()
    seconds = time.perf_counter() - started
    rate = (step - first_step) / max(time.perf_counter() - loop_started, 1e-9)
    if is_main:
        _write_run(run, recipe, step, seconds, rate, world, str(dev))
    accelerator.wait_for_everyone()
    return TrainResult(run, exported, step, losses, seconds, rate)


def _load_trained(unet, tensors: dict[str, torch.Tensor], is_lora: bool) -> None:
    """Restore what a run trains from its checkpoint: the whole UNet, or (LoRA) exactly its LoRA tensors."""
    if not is_lora:
        unet.load_state_dict(tensors)
        return
    expected = set(lora_state(unet))
    if set(tensors) != expected:
        raise SVD3DError(f"the checkpoint's LoRA tensors do not match the recipe's [lora] ({len(tensors)} saved, "
                         f"{len(expected)} expected): resume with the recipe the run was started with")  # fmt: skip
    unet.load_state_dict(tensors, strict=False)


def _export_adapter(folder: Path, state: dict, config, recipe: Recipe, model: SVDModel, step: int, record: dict,
                    data) -> None:  # fmt: skip
    """Write the adapter (PEFT's files, svd3d.models.lora) and its card into `folder`, replacing an older export
    atomically."""
    new = folder.with_name(f".{folder.name}.new")
    old = folder.with_name(f".{folder.name}.old")
    for path in (new, old):
        shutil.rmtree(path, ignore_errors=True)
    adapter_config = {**config_dict(config), "base_model_name_or_path": recipe.model.init}
    meta = {"base_model": recipe.model.init, "base_fingerprint": model.fingerprint, "kind": recipe.model.kind,
            "recipe": recipe.name, "camera": recipe.data.camera if recipe.data.generate == "clips" else None,
            "step": step}  # fmt: skip
    save_adapter(new, peft_file_tensors(state), adapter_config, meta)
    (new / "README.md").write_text(adapter_card(recipe, step, record, data, new / ADAPTER_FILE))
    outputs.usual_permissions(new)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def adapter_card(recipe: Recipe, step: int, record: dict, data, weights: Path) -> str:
    """The exported adapter's README.md: what it adapts, how it was trained, how to use and measure it."""
    m, d, t, lo = recipe.model, recipe.data, recipe.train, recipe.lora
    with safe_open(str(weights), framework="pt") as f:
        params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
        modules = len(list(f.keys())) // 2
    made = f"made by `svd3d data {d.generate}` (count {d.count}, seed {d.seed})" if d.generate else f"`{d.path}`"
    camera = f", camera {d.camera}" if d.generate == "clips" and d.camera != "any" else ""
    precision = "float32" if t.precision == "no" else f"{t.precision} autocast"
    loss = "n/a" if record.get("loss") is None else f"{record['loss']:.4f}"
    use = "video" if m.kind == "video" else "orbit"
    lines = [
        f"# {recipe.name}",
        "",
        f"A LoRA adapter for the {m.kind} model `{m.init}`, trained by `svd3d train` with the recipe "
        f"`{Path(recipe.source).name or recipe.name}`; PEFT's file format (`adapter_model.safetensors` + "
        "`adapter_config.json`). Use it with "
        f"`svd3d {use} IMAGE --model {m.init} --lora <this folder>[:SCALE]`.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | {m.init} (frozen) |",
        f"| adapts | {modules} linear layers: {', '.join(lo.targets)} of the {' and '.join(lo.blocks)} transformer "
        "blocks |",
        f"| rank, alpha | {lo.rank}, {lo.alpha:g} (update x alpha / rank), dropout {lo.dropout:g} |",
        f"| parameters | {params / 1e3:.1f} k ({weights.stat().st_size / 1e3:.0f} kB in float32) |",
        f"| data | {made}{camera}: {len(data)} training clips; {d.held_out} held out |",
        f"| training | {step} steps of batch {t.batch}, lr {recipe.optim.lr:g}, {precision}, EMA {t.ema_decay:g} "
        "(these weights) |",
        f"| compute | {record['compute_seconds'] / 60:.1f} min on {record['processes']} x {record['device']} "
        "(all sessions, data generation and encoding included) |",
        f"| last training loss | {loss} |",
        "",
        f"Measure what it does: `svd3d eval camera --model {m.init} --lora <this folder>` (mean optical flow and "
        "divergence of clips made with and without it, on held-out images)."
        if m.kind == "video"
        else "",
        "",
    ]
    return "\n".join(lines)


def _export(model: SVDModel, unet, ema: dict | None, folder: Path) -> None:
    """Export the EMA weights (or the raw ones) as a diffusers folder, leaving the training UNet untouched."""
    export_unet = copy.deepcopy(unet).eval().requires_grad_(False)
    if ema is not None:
        current = export_unet.state_dict()
        export_unet.load_state_dict({k: ema[k].to(v.dtype) for k, v in current.items()})
    export_model(replace(model, unet=export_unet), folder)


def model_card(recipe: Recipe, model: SVDModel, step: int, record: dict, data) -> str:
    """The exported model's README.md: what it is, how it was trained (recipe, data, steps, compute), its limits."""
    m, d, t = recipe.model, recipe.data, recipe.train
    params = {name: sum(p.numel() for p in module.parameters()) for name, module in model.modules().items()}
    source = getattr(data, "source", {}) or {}
    made = f"made by `svd3d data {d.generate}` (count {d.count}, seed {d.seed})" if d.generate else f"`{d.path}`"
    unit = "objects" if m.kind == "orbit" else "clips"
    precision = "float32" if t.precision == "no" else f"{t.precision} autocast"
    article = "An" if m.kind == "orbit" else "A"
    hours = record["compute_seconds"] / 3600
    loss = "n/a" if record.get("loss") is None else f"{record['loss']:.4f}"
    lines = [
        f"# {recipe.name}",
        "",
        f"{article} {m.kind} model in svd3d's format (diffusers folders + `svd3d.json`), trained by `svd3d train` with the "
        f"recipe `{Path(recipe.source).name or recipe.name}`. Use it with `svd3d {m.kind} IMAGE --model <this folder>`.",
        "",
        "| | |",
        "|---|---|",
        f"| frames x size | {m.frames} x {m.size}x{m.size} |",
        f"| started from | {m.init} |",
        f"| parameters | UNet {params['unet'] / 1e6:.2f} M, VAE {params['vae'] / 1e6:.2f} M, "
        f"image encoder {params['image_encoder'] / 1e6:.2f} M |",
        f"| data | {made}: {len(data)} training samples of {len(data.objects())} {unit}; {d.held_out} {unit} "
        "held out |",
        f"| training | {step} steps of batch {t.batch}, lr {recipe.optim.lr:g}, {precision}, "
        f"EMA {t.ema_decay:g} (these weights)"
        + (f"; VAE decoder fitted to the data for {t.decoder_steps} steps, encoder frozen" if t.decoder_steps else "")
        + " |",
        f"| compute | {hours:.2f} h on {record['processes']} x {record['device']} (all sessions, data and VAE phase "
        "included) |",
        f"| last training loss | {loss} |",
        "",
        "Data generator settings: `"
        + json.dumps({k: v for k, v in source.items() if k != "objects"}, sort_keys=True)[:700]
        + "`",
        "",
        (
            "Metrics: `svd3d eval orbit --model <this folder> --data <held-out dataset>` prints novel-view PSNR / SSIM "
            "/ mask IoU beside the repeat-input and mean-image baselines; `--family procedural --family held-out` "
            "scores it on pictures framed by `svd3d orbit`'s preprocessing, the held-out family made of kinds no "
            "training run has."
            if m.kind == "orbit"
            else "Metrics: `svd3d eval video --model <this folder> --data <held-out dataset>` prints PSNR / SSIM "
            "against the real clips beside the repeat-input and mean-image baselines, and how well the motion follows "
            "the motion bucket."
        ),
        "",
    ]
    return "\n".join(lines)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (a killed run may have logged steps its last checkpoint does not hold)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _write_run(run: Path, recipe: Recipe, step: int, seconds: float, rate: float, world: int, device: str) -> None:
    write_json(run / "run.json", {"job": "train", "command": command_line(), "recipe": recipe.to_dict(),
                                  "step": step, "seconds_this_call": round(seconds, 2),
                                  "steps_per_second": round(rate, 4), "processes": world, "device": device,
                                  "versions": versions()})  # fmt: skip
