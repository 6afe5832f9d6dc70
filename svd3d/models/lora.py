"""LoRA adapters of the UNet's attention projections, in PEFT's file format: made by training, checked, applied.

An adapter adds to each adapted linear layer W (out x in) the low-rank update

    W' = W + scale * (alpha / r) * B @ A,      A: (r, in), B: (out, r)

(alpha / sqrt(r) for rsLoRA), `scale` being the user's strength (1 by default). svd3d trains adapters on the
self-attention projections of the transformer blocks: the temporal ones (`temporal_transformer_blocks`, which mix
the frames of each pixel: how things move), the spatial ones (`transformer_blocks`, within a frame), or both.

Files: PEFT's own `save_pretrained` layout, so `peft.PeftModel.from_pretrained(unet, FOLDER)` loads it as it is:

    FOLDER/adapter_model.safetensors   base_model.model.<module>.lora_A.weight (r, in), ...lora_B.weight (out, r);
                                       its metadata repeats the config (`adapter_config`) and svd3d's record
                                       (`svd3d`: base model, recipe, camera motion, step)
    FOLDER/adapter_config.json         PEFT's LoraConfig: r, lora_alpha, target_modules (full module names), ...

A lone adapter_model.safetensors works too (its config travels in its metadata); so do files whose keys carry
diffusers' `unet.` prefix or none.

Use (`svd3d video / orbit --lora ADAPTER[:SCALE]`, `loras=[(path, scale)]`): "fuse" adds every update into the
weights, so sampling runs at the base model's speed; "separate" runs the adapters beside the weights as PEFT LoRA
layers. Both give the same output up to float rounding, and both are undone when the job ends (the fused weights
restored bit for bit), so a model passed to many calls stays the base model.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from svd3d.errors import SVD3DError
from svd3d.models.files import read_header
from svd3d.models.registry import adapter_entries
from svd3d.runinfo import file_sha256

ADAPTER_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
TRAIN_ADAPTER = "default"  # the adapter name PEFT's layers hold while svd3d trains one
LORA_MODES = ("fuse", "separate")
BLOCKS = {"temporal": "temporal_transformer_blocks", "spatial": "transformer_blocks"}
# what an adapter may adapt inside a transformer block. Cross-attention (attn2) attends to one token (the CLIP
# image embedding), so its query and key projections never change the output (svd3d.models.attention): only its
# value and output projections are worth adapting.
PROJECTIONS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_v", "attn2.to_out.0")
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
_KEY_PREFIXES = ("base_model.model.", "unet.")


# ------------------------------------------------------------------------------------------------ training


def lora_target_modules(unet: torch.nn.Module, blocks: Sequence[str], projections: Sequence[str]) -> list[str]:
    """Full names of the linear layers an adapter of `blocks` ("temporal", "spatial") and `projections`
    (PROJECTIONS) adapts in `unet`, in module order."""
    kinds = "|".join(BLOCKS[b] for b in blocks)
    wanted = "|".join(re.escape(p) for p in projections)
    pattern = re.compile(rf"(^|\.)({kinds})\.\d+\.({wanted})$")
    found = [n for n, m in unet.named_modules() if pattern.search(n) and isinstance(m, torch.nn.Linear)]
    if not found:
        raise SVD3DError(f"the model has no {' or '.join(blocks)} attention projections {list(projections)} to adapt")
    return found


def add_lora(unet: torch.nn.Module, modules: Sequence[str], rank: int, alpha: float, dropout: float, seed: int):
    """Freeze `unet` and give each of `modules` a trainable PEFT LoRA layer (A: Kaiming-uniform from a generator
    seeded by `seed`, B: zero, so the model starts exactly as the base). Returns the peft LoraConfig."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(modules))
    unet.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, unet, adapter_name=TRAIN_ADAPTER)
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(modules))


def lora_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors of a UNet that `add_lora` adapted, under their state-dict names."""
    return {k: v for k, v in unet.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def peft_file_tensors(state: dict[str, torch.Tensor], adapter_name: str = TRAIN_ADAPTER) -> dict[str, torch.Tensor]:
    """`lora_state` names (<module>.lora_A.<adapter>.weight) -> PEFT's file names (base_model.model.<module>.lora_A
    .weight), float32, contiguous, on the CPU."""
    out = {}
    for key, value in state.items():
        plain = key.replace(f".lora_A.{adapter_name}.", ".lora_A.").replace(f".lora_B.{adapter_name}.", ".lora_B.")
        out[f"base_model.model.{plain}"] = value.detach().float().contiguous().cpu()
    return out


def config_dict(config) -> dict:
    """A peft LoraConfig as adapter_config.json holds it (sets as sorted lists)."""
    data = config.to_dict()
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in data.items()}


def save_adapter(folder: Path, tensors: dict[str, torch.Tensor], config: dict, record: dict) -> None:
    """Write FOLDER/adapter_model.safetensors (PEFT file names, the config and `record` in its metadata) and
    FOLDER/adapter_config.json. `tensors` as `peft_file_tensors` makes them."""
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "adapter_config": json.dumps(config), "svd3d": json.dumps(record)}
    save_file(tensors, str(folder / ADAPTER_FILE), metadata=metadata)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter read from disk, with the strength it is applied at."""

    source: str  # what the user named: a bundled name, a folder or a file
    path: Path  # the .safetensors file
    scale: float
    rank: int  # the config's r
    alpha: float  # the config's lora_alpha
    rslora: bool  # scaling alpha / sqrt(r) instead of alpha / r
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)  # module -> (A (r, in), B (out, r))
    record: dict = field(default_factory=dict)  # svd3d's metadata (base model, recipe, camera); {} for others
    sha256: str = ""
    size: int = 0  # bytes

    @property
    def factor(self) -> float:
        """scale * alpha / r (rsLoRA: / sqrt(r)): what B @ A is multiplied by."""
        return self.scale * self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)

    def to_record(self) -> dict:
        """How run.json records it."""
        return {"source": self.source, "path": str(self.path), "sha256": self.sha256, "bytes": self.size,
                "scale": self.scale, "rank": self.rank, "alpha": self.alpha, "modules": len(self.pairs),
                "base_model": self.record.get("base_model")}  # fmt: skip


def parse_lora(spec) -> tuple[str, float]:
    """An adapter as the API takes it: (path or name, scale), a bare path or name (scale 1), or the command line's
    "PATH[:SCALE]" text -> (path or name, scale)."""
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise SVD3DError(f"a LoRA is given as (path, scale), got {spec!r}")
        path, scale = spec
        try:
            return str(path), float(scale)
        except (TypeError, ValueError):
            raise SVD3DError(f"the scale of LoRA {path} must be a number, got {scale!r}") from None
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if not sep or Path(text).exists():
        return text, 1.0
    try:
        return head, float(tail)
    except ValueError:
        if head in adapter_entries() or Path(head).expanduser().exists():
            raise SVD3DError(f"--lora {text}: the scale after ':' must be a number, e.g. {head}:0.8") from None
        return text, 1.0  # not a scale: a path with a colon in it (read_adapter says when it does not exist)


def read_adapters(specs: Sequence) -> list[Adapter]:
    """Read every adapter a job names (parse_lora's forms), checking each file, before any model is loaded."""
    return [read_adapter(*parse_lora(spec)) for spec in specs or ()]


def adapter_file(name: str) -> Path:
    """The .safetensors an adapter reference names: a bundled adapter's name, an adapter folder, or a file."""
    bundled = adapter_entries()
    if name in bundled:
        return bundled[name] / ADAPTER_FILE
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / ADAPTER_FILE).is_file():
            raise SVD3DError(f"LoRA folder {path} has no {ADAPTER_FILE}; pass the adapter's .safetensors file")
        return path / ADAPTER_FILE
    if path.is_file():
        if path.suffix != ".safetensors":
            raise SVD3DError(f"LoRA {path} is not a .safetensors file; svd3d reads PEFT LoRA adapters in safetensors")
        return path
    known = f" (bundled: {', '.join(bundled)})" if bundled else ""
    raise SVD3DError(
        f"LoRA {name} does not exist: pass an adapter folder, a .safetensors file or a bundled name{known}"
    )


def read_adapter(name: str, scale: float = 1.0) -> Adapter:
    """Read and check one adapter (module docstring's formats): its config, and every module's A and B."""
    if not math.isfinite(scale):
        raise SVD3DError(f"the scale of LoRA {name} must be a finite number, got {scale}")
    path = adapter_file(name)
    header = read_header(path)  # checks the file is a whole safetensors file, with errors that say what is wrong
    metadata = header.get("__metadata__") or {}
    config = _adapter_config(path, metadata)
    rank, alpha, rslora = _check_config(path, config)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            plain = next((key[len(p) :] for p in _KEY_PREFIXES if key.startswith(p)), key)
            match = _KEY.match(plain)
            if match is None:
                raise SVD3DError(f"LoRA {path}: tensor {key!r} is not a PEFT LoRA weight (<module>.lora_A.weight / "
                                 "<module>.lora_B.weight); svd3d reads PEFT LoRA adapters")  # fmt: skip
            parts.setdefault(match["module"], {})[match["part"]] = f.get_tensor(key).float()
    if not parts:
        raise SVD3DError(f"LoRA {path} holds no LoRA weights")
    pairs = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise SVD3DError(f"LoRA {path}: module {module} has lora_{''.join(ab)} but not both lora_A and lora_B")
        a, b = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise SVD3DError(f"LoRA {path}: module {module} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}; "
                             "a LoRA of a linear layer needs A (r, in) and B (out, r)")  # fmt: skip
        pairs[module] = (a, b)
    try:
        record = json.loads(metadata.get("svd3d", "{}"))
    except json.JSONDecodeError:
        record = {}
    return Adapter(name, path, float(scale), rank, alpha, rslora, pairs, record, file_sha256(path),
                   path.stat().st_size)  # fmt: skip


def _adapter_config(path: Path, metadata: dict) -> dict:
    """The PEFT config of an adapter file: from its metadata, else adapter_config.json beside it."""
    text = metadata.get("adapter_config")
    where = f"{path}'s metadata"
    if text is None:
        beside = path.parent / CONFIG_FILE
        if not beside.is_file():
            raise SVD3DError(f"LoRA {path} has no config: neither in its metadata nor an {CONFIG_FILE} beside it; "
                             "put the adapter's adapter_config.json next to it")  # fmt: skip
        text, where = beside.read_text(), str(beside)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise SVD3DError(f"LoRA config in {where} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise SVD3DError(f"LoRA config in {where} is not a JSON object")
    return config


def _check_config(path: Path, config: dict) -> tuple[int, float, bool]:
    """(r, lora_alpha, use_rslora) of a PEFT LoRA config, refusing what svd3d does not apply."""
    if config.get("peft_type", "LORA") != "LORA":
        raise SVD3DError(f"{path} is a PEFT {config.get('peft_type')} adapter; svd3d applies LoRA adapters only")
    unsupported = [
        ("use_dora", bool(config.get("use_dora"))),
        ("fan_in_fan_out", bool(config.get("fan_in_fan_out"))),
        ("bias", config.get("bias", "none") != "none"),
        ("lora_bias", bool(config.get("lora_bias"))),
        ("rank_pattern", bool(config.get("rank_pattern"))),
        ("alpha_pattern", bool(config.get("alpha_pattern"))),
    ]
    named = [name for name, used in unsupported if used]
    if named:
        raise SVD3DError(f"LoRA {path} uses {', '.join(named)}, which svd3d does not apply; use a plain LoRA "
                         "(one r and lora_alpha, no bias, no DoRA)")  # fmt: skip
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(rank, int) or rank < 1 or not isinstance(alpha, int | float):
        raise SVD3DError(f"LoRA {path}: its config needs r (an integer >= 1) and lora_alpha (a number), "
                         f"got r={rank!r}, lora_alpha={alpha!r}")  # fmt: skip
    return rank, float(alpha), bool(config.get("use_rslora"))


def check_adapters_fit(unet: torch.nn.Module, adapters: Sequence[Adapter], model_name: str) -> None:
    """Every adapted module exists in `unet` as a linear layer of the adapter's shape; else one line naming the
    first mismatch."""
    for adapter in adapters:
        base = adapter.record.get("base_model")
        trained = f" (it was trained on {base})" if base else ""
        for module, (a, b) in adapter.pairs.items():
            if a.shape[0] != adapter.rank:
                raise SVD3DError(f"LoRA {adapter.source}: module {module} has rank {a.shape[0]}, its config says r = "
                                 f"{adapter.rank}")  # fmt: skip
            try:
                layer = unet.get_submodule(module)
            except AttributeError:
                layer = None
            if not isinstance(layer, torch.nn.Linear):
                raise SVD3DError(f"LoRA {adapter.source} does not fit model {model_name}: it adapts {module}, a "
                                 f"linear layer the model does not have{trained}")  # fmt: skip
            want = (layer.in_features, layer.out_features)
            if (a.shape[1], b.shape[0]) != want:
                raise SVD3DError(f"LoRA {adapter.source} does not fit model {model_name}: it adapts {module} as "
                                 f"{a.shape[1]} -> {b.shape[0]} features, the model's is {want[0]} -> {want[1]}"
                                 f"{trained}")  # fmt: skip


# ------------------------------------------------------------------------------------------------ applying


@contextlib.contextmanager
def applied_adapters(
    unet: torch.nn.Module, adapters: Sequence[Adapter], mode: str = "fuse", timer=None
) -> Iterator[None]:
    """Run the block with `adapters` applied to `unet` (checked by check_adapters_fit first), then undo them;
    `timer` (svd3d.runinfo.Timer) times applying them as "lora".

    fuse: W += sum over adapters of factor * B @ A, computed in float32 (float64 for float64 weights) and cast once
    to W's dtype; the original
    weights are kept and put back bit for bit. separate: each adapter becomes a PEFT LoRA layer beside W (scale
    set with peft's own `set_scale`), removed afterwards."""
    if mode not in LORA_MODES:
        raise SVD3DError(f"unknown LoRA mode {mode!r}; choose fuse or separate")
    if not adapters:
        yield
        return
    timed = timer("lora") if timer is not None else contextlib.nullcontext()
    with (_fused if mode == "fuse" else _separate)(unet, adapters, timed):
        yield


@contextlib.contextmanager
def _fused(unet: torch.nn.Module, adapters: Sequence[Adapter], timed) -> Iterator[None]:
    originals = {}
    try:
        with timed, torch.no_grad():
            deltas: dict[str, torch.Tensor] = {}
            for adapter in adapters:
                for module, (a, b) in adapter.pairs.items():
                    weight = unet.get_submodule(module).weight
                    wide = torch.promote_types(weight.dtype, torch.float32)  # float32, or float64 for float64 weights
                    delta = (b.to(weight.device, wide) @ a.to(weight.device, wide)) * adapter.factor  # (out, in)
                    deltas[module] = deltas[module] + delta if module in deltas else delta
            for module, delta in deltas.items():
                weight = unet.get_submodule(module).weight
                originals[module] = weight.detach().clone()
                weight.copy_((weight.to(delta.dtype) + delta).to(weight.dtype))
        yield
    finally:
        with torch.no_grad():
            for module, original in originals.items():
                unet.get_submodule(module).weight.copy_(original)


@contextlib.contextmanager
def _separate(unet: torch.nn.Module, adapters: Sequence[Adapter], timed) -> Iterator[None]:
    names = [f"svd3d_{i}" for i in range(len(adapters))]
    try:
        with timed:
            _inject(unet, adapters, names)
        yield
    finally:
        remove_lora_layers(unet)


def _inject(unet: torch.nn.Module, adapters: Sequence[Adapter], names: list[str]) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    for name, adapter in zip(names, adapters, strict=True):
        config = LoraConfig(r=adapter.rank, lora_alpha=adapter.alpha, use_rslora=adapter.rslora,
                            target_modules=sorted(adapter.pairs))  # fmt: skip
        with warnings.catch_warnings():  # peft warns that a second adapter makes several: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            inject_adapter_in_model(config, unet, adapter_name=name)
        with torch.no_grad():
            for module, (a, b) in adapter.pairs.items():
                layer = unet.get_submodule(module)
                layer.lora_A[name].weight.copy_(a)
                layer.lora_B[name].weight.copy_(b)
                layer.set_scale(name, adapter.scale)
    for layer in _lora_layers(unet).values():
        layer.set_adapter(names)  # every adapter at once (each layer uses those it holds)
        layer.requires_grad_(False)


def _lora_layers(unet: torch.nn.Module) -> dict[str, torch.nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: m for name, m in unet.named_modules() if isinstance(m, BaseTunerLayer)}


def remove_lora_layers(unet: torch.nn.Module) -> None:
    """Put every linear layer that PEFT wrapped back in its place, as it was (nothing merged)."""
    for name, layer in _lora_layers(unet).items():
        parent, _, child = name.rpartition(".")
        setattr(unet.get_submodule(parent) if parent else unet, child, layer.get_base_layer())
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in vars(unet):
            delattr(unet, attr)
