"""Many inputs, one command: `svd3d orbit|video|recon` over a folder, a glob, a manifest or several paths.

Small pure functions (collect the inputs, read a manifest, name the outputs, shard, read / append results,
decide what is finished) and one loop, `run_batch`. Every item writes through its own job (svd3d.api's
generate_asset / generate_orbit / generate_video / reconstruct_into), so each output is staged, locked and marked
by svd3d.outputs as a single job's is; the batch itself locks nothing but a line of ROOT/results.jsonl at a time, so any number of processes
(`torchrun` / `accelerate launch`, each taking every WORLD_SIZE-th item) share one ROOT.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from svd3d import outputs, viewer
from svd3d.errors import SVD3DError
from svd3d.media import run_json_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MANIFEST_SUFFIXES = (".txt", ".jsonl")
RESULTS = "results.jsonl"
STATUSES = ("ok", "failed", "skipped")
# options that choose how a job runs, not what it makes: left out of the settings fingerprint, so a resumed batch
# on another device (or another rank's cuda:N) still finds its finished items
RUNTIME_OPTIONS = frozenset({"model", "config", "device", "offload", "forward_chunking", "progress"})


@dataclass(frozen=True)
class Item:
    input: Path
    settings: dict = field(default_factory=dict)  # per-item options from a .jsonl manifest (the command's names)
    source: str = ""  # where it was listed, for messages: "list.jsonl:3", a folder, a pattern


@dataclass(frozen=True)
class Rank:
    """This process's place in a torchrun / accelerate launch (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE);
    one process alone is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launched: bool = False  # the variables were set (by a launcher)

    @classmethod
    def from_env(cls, env=None) -> Rank:
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return cls()
        world = int(env["WORLD_SIZE"])
        return cls(
            rank=int(env.get("RANK", 0)),
            world_size=world,
            local_rank=int(env.get("LOCAL_RANK", 0)),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            launched=True,
        )


@dataclass
class BatchSummary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    results: Path | None = None
    records: list[dict] = field(default_factory=list)  # this process's records, in order


# ------------------------------------------------------------------------------------------------ inputs


def is_batch(args: list[str], kind: str) -> bool:
    """Several inputs, a manifest, a glob pattern that is not a file, or a folder of inputs (for recon: a folder
    without transforms.json). One image (or one views folder, for recon) is a single job, as before."""
    if len(args) != 1:
        return True
    path = Path(args[0])
    if path.is_file():
        return path.suffix.lower() in MANIFEST_SUFFIXES
    if path.is_dir():
        return kind != "recon" or (not (path / "transforms.json").exists() and bool(_view_folders(path)))
    return glob.has_magic(args[0])


def collect_inputs(args: list[str], kind: str, allowed: set[str] | None = None) -> list[Item]:
    """Expand the command's arguments into items, in order: a folder -> its images (recon: its sub-folders that
    hold transforms.json), sorted; a quoted glob pattern -> its matches, sorted; a .txt / .jsonl manifest -> its
    lines; anything else -> itself (a missing file is the item's own error, not the batch's)."""
    items: list[Item] = []
    for arg in args:
        path = Path(arg)
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            items += read_manifest(path, allowed or set())
        elif path.is_dir() and not (kind == "recon" and (path / "transforms.json").exists()):
            found = _view_folders(path) if kind == "recon" else _images(path)
            if not found:
                what = (
                    "sub-folders with transforms.json" if kind == "recon" else f"images ({', '.join(IMAGE_SUFFIXES)})"
                )
                raise SVD3DError(f"folder {path} holds no {what}; pass images, a folder of them or a manifest")
            items += [Item(p, {}, str(path)) for p in found]
        elif glob.has_magic(arg) and not path.exists():
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            if not matches:
                raise SVD3DError(f"pattern {arg!r} matches no file; check it (quote it so the shell leaves it alone)")
            items += [Item(p, {}, arg) for p in matches]
        else:
            items.append(Item(path, {}, arg))
    if not items:
        raise SVD3DError("no inputs: pass images, a folder, a quoted glob pattern or a .txt / .jsonl manifest")
    return items


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _view_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "transforms.json").is_file())


def read_manifest(path: Path, allowed: set[str]) -> list[Item]:
    """A .txt manifest: one input per line, `#` comments and blank lines ignored. A .jsonl manifest: one JSON
    object per line, {"input": "a.png", ...} plus per-item options named as the command's (`seed`, `size`,
    `no-mesh` or `no_mesh`, ...) from `allowed`. Relative inputs are relative to the manifest's folder."""
    items = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        where = f"{path}:{number}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if path.suffix.lower() == ".txt":
            items.append(Item(_relative_to(path, text), {}, where))
            continue
        try:
            entry = json.loads(text)
        except ValueError as err:
            raise SVD3DError(f"{where} is not a JSON object ({err.msg}); write one object per line") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("input"), str):
            raise SVD3DError(f'{where} needs an "input" path, e.g. {{"input": "chair.png", "seed": 3}}')
        settings = {key.replace("-", "_"): value for key, value in entry.items() if key != "input"}
        unknown = sorted(key for key in settings if key not in allowed)
        if unknown:
            raise SVD3DError(
                f"{where}: unknown key {unknown[0]!r}; per-item keys are input and {', '.join(sorted(allowed))}"
            )
        items.append(Item(_relative_to(path, entry["input"]), settings, where))
    return items


def _relative_to(manifest: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else manifest.parent / path


# ------------------------------------------------------------------------------------------------ names, shards


def assign_names(items: list[Item]) -> list[str]:
    """One output name per item from its input's stem, unique (case-insensitively, for macOS / Windows disks) and
    deterministic: computed over the whole list, so every shard agrees. The first `chair` keeps its name, later
    ones become `chair-2`, `chair-3`, ... skipping any name another input has as its own stem."""
    stems = [item.input.name if item.input.is_dir() else item.input.stem for item in items]
    stems = [s.lstrip(".") or "item" for s in stems]  # never a hidden name (svd3d's staging names start with '.')
    taken = {s.casefold() for s in stems}
    seen: set[str] = set()
    names = []
    for stem in stems:
        name, n = stem, 1
        while name.casefold() in seen or (n > 1 and name.casefold() in taken):
            n += 1
            name = f"{stem}-{n}"
        seen.add(name.casefold())
        names.append(name)
    return names


def shard(n: int, rank: int, world_size: int) -> list[int]:
    """The item indices process `rank` of `world_size` takes: i % world_size == rank."""
    return list(range(rank, n, world_size))


def output_path(root: Path, name: str, fmt: str | None) -> Path:
    """ROOT/<name> (a folder: orbit views, recon meshes, video PNG frames) or ROOT/<name>.<fmt> (a clip)."""
    return Path(root) / (name if fmt in (None, "frames") else f"{name}.{fmt}")


def rank_device(device: str, rank: Rank) -> str:
    """Under a launcher, `auto` / `cuda` mean this process's own GPU, cuda:LOCAL_RANK (when CUDA is present)."""
    import torch

    if rank.launched and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{rank.local_rank % torch.cuda.device_count()}"
    return device


def rank_threads(rank: Rank) -> int | None:
    """Under a launcher, this process's share of the CPU cores (at least 1), so N processes do not each start a
    thread per core and fight over them (2 processes of 2 threads on 2 cores run 10-30x slower); None alone."""
    if not rank.launched:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, rank.local_world_size))


# ------------------------------------------------------------------------------------------------ results


def digest(path: Path) -> str | None:
    """SHA-256 of an input: a file's bytes; a folder's files (names and bytes, hidden ones left out). None: missing."""
    path = Path(path)
    if path.is_file():
        return outputs.fingerprint(path)["sha256"]
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if not any(part.startswith(".") for part in rel.split("/")):
            h.update(rel.encode() + b"\0" + outputs.fingerprint(file)["sha256"].encode())
    return h.hexdigest()


def settings_record(settings: dict) -> dict:
    """The item's settings as results.jsonl records them: JSON values, runtime-only options left out."""
    return json.loads(json.dumps({k: v for k, v in sorted(settings.items()) if k not in RUNTIME_OPTIONS}, default=str))


def settings_fingerprint(kind: str, input_digest: str | None, settings: dict) -> str:
    """What an item's output depends on besides the model: the job, the input's content, every setting."""
    text = json.dumps({"job": kind, "input": input_digest, "settings": settings_record(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_results(path: Path) -> dict[str, dict]:
    """The last record of each output in a results.jsonl, by the output's name in ROOT (`chair`, `chair.mp4`)."""
    import fcntl

    if not path.exists():
        return {}
    with path.open() as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)  # no other process is half-way through appending a line
        lines = fh.read().splitlines()
    last = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record = None
        if line.strip() and not (isinstance(record, dict) and record.get("status") in STATUSES and "output" in record):
            raise SVD3DError(
                f"{path}:{number} is not an svd3d batch record; results.jsonl is svd3d's: choose another -o"
            )
        if record is not None:
            last[Path(record["output"]).name] = record
    return last


def append_result(path: Path, record: dict) -> None:
    """Append one record as one line, under an exclusive lock, so processes sharing ROOT never interleave."""
    import fcntl

    data = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
    finally:
        os.close(fd)  # releases the lock


def is_finished(last: dict | None, model_fingerprint: str | None, fingerprint: str, out: Path) -> bool:
    """Skip an item only when its last record is a success with the same model and settings, and its output is
    still there as svd3d wrote it (an item killed half-way left only a staging folder, and no record)."""
    return (
        last is not None
        and last["status"] in ("ok", "skipped")
        and last.get("model_fingerprint") == model_fingerprint
        and last.get("settings_fingerprint") == fingerprint
        and outputs.is_intact(out, run_json_path(out) if out.is_file() else None)  # a clip: its run.json
    )


def one_line(err: BaseException) -> str:
    """A failure as results.jsonl records it: an SVD3DError's message, anything else as `Type: message`."""
    text = str(err) if isinstance(err, SVD3DError) else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


# ------------------------------------------------------------------------------------------------ the loop


Job = Callable[[Path, Path, dict], dict]  # job(input, output, settings) -> its timings in seconds


def run_batch(
    kind: str,
    items: list[Item],
    root: Path,
    job: Job,
    *,
    options: dict,
    fmt: str | None = None,
    model_fingerprint: str | None = None,
    rank: Rank | None = None,
    progress: bool = True,
) -> BatchSummary:
    """Run `job` on this process's share of `items`, each into ROOT/<name>, recording every item in
    ROOT/results.jsonl; finished items are skipped, a failed one is recorded and the batch goes on.
    `options` are the command's settings; an item's own (from a manifest) override them."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    rank = rank or Rank()

    # 1. names over the whole list (every process computes the same), the results file, this process's share
    names = assign_names(items)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SVD3DError(f"-o {root} is a file; with several inputs -o names a folder for their outputs")
    root.mkdir(parents=True, exist_ok=True)  # before any job: no job's lock may create (and later remove) ROOT
    results = root / RESULTS
    last = read_results(results)
    mine = shard(len(items), rank.rank, rank.world_size)
    summary = BatchSummary(results=results)
    who = f"rank {rank.rank}/{rank.world_size} " if rank.world_size > 1 else ""

    # 2. one item at a time: skip what is finished, run the rest, record each outcome
    bar = tqdm(mine, desc=f"{who}{kind}", unit="item", disable=not progress, position=rank.local_rank)
    with logging_redirect_tqdm(), bar:
        for i in bar:
            item, name = items[i], names[i]
            out = output_path(root, name, fmt)
            settings = {**options, **item.settings}
            fingerprint = settings_fingerprint(kind, digest(item.input), settings)
            record = {
                "name": name,
                "input": str(item.input),
                "output": str(out),
                "status": "ok",
                "error": None,
                "job": kind,
                "rank": rank.rank,
                "timings_s": {},
                "model_fingerprint": model_fingerprint,
                "settings_fingerprint": fingerprint,
                "settings": settings_record(settings),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            if is_finished(last.get(out.name), model_fingerprint, fingerprint, out):
                record["status"] = "skipped"
                log.info("%s: finished earlier, skipped (%s)", name, out)
            else:
                log.info("%s: %s -> %s", name, item.input, out)
                start = time.perf_counter()
                try:
                    record["timings_s"] = job(item.input, out, settings)
                except Exception as err:  # one bad input never stops the batch; Ctrl-C / SIGTERM do
                    record.update(status="failed", error=one_line(err))
                    tqdm.write(f"failed: {item.input} ({item.source}): {record['error']}")
                record["timings_s"] = {**record["timings_s"], "total": round(time.perf_counter() - start, 3)}
                log.info("%s: %s in %.1f s", name, record["status"], record["timings_s"]["total"])
            append_result(results, record)
            summary.records.append(record)
            setattr(summary, record["status"], getattr(summary, record["status"]) + 1)
    write_root_index(root)
    return summary


def write_root_index(root: Path) -> None:
    """ROOT/index.html: every item of ROOT/results.jsonl (its latest record), linking to the item's own page. It is
    added as svd3d's file in ROOT's mark; a ROOT/index.html svd3d did not write is left as it is, and so is the
    page while another process of the batch (another rank) is writing it: the results file holds it all anyway."""
    try:
        with outputs.adding(root, "batch") as staging:
            viewer.write_batch_index(root, list(read_results(root / RESULTS).values()), staging / viewer.INDEX)
    except SVD3DError as err:
        log.warning("left %s as it is: %s", root / viewer.INDEX, err)
