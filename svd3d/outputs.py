"""What svd3d may write, replace and lock: the output contract, written once.

svd3d replaces only what svd3d wrote. Every output folder it writes carries a mark, `.svd3d.json`, listing each
file it wrote with its size and SHA-256; a single-file output (a clip) is recorded, with its hash, in the run.json
beside it. Before any work a job checks its output:

- a missing path or an empty folder is free;
- a folder may be replaced only when every file in it is one the mark lists, unchanged (a user's file beside
  svd3d's, or an svd3d file the user edited, makes the folder theirs: the job refuses, naming the file);
- a file may be replaced only when its record says svd3d wrote exactly these bytes;
- the output's location must be writable (checked by creating, then removing, a file there).

A job holds an exclusive lock on its output path for its whole run (`.NAME.svd3d-lock` beside it, an OS lock that
dies with the process); a second job on the same path refuses at once. A folder is written under a hidden
`.NAME.svd3d-partial-*` name and swapped into place only when complete, with SIGINT / SIGTERM held back for the
two renames of the swap, so an interrupted job leaves the previous output as it was and nothing that looks
finished. Partial folders left by a killed job (SIGKILL) are removed by the next job on that path.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from svd3d import signals
from svd3d.errors import SVD3DError

MARK = ".svd3d.json"
LOCK_SUFFIX = ".svd3d-lock"
PARTIAL = ".svd3d-partial-"
OLD = ".svd3d-old-"


# ------------------------------------------------------------------------------------------------ atomic writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(folder: Path) -> None:
    """`folder`, and the folders under it, 0777 and files 0666, less the umask (a file given alone: 0666): mkdtemp
    / mkstemp and some writers (safetensors) make 0700 / 0600 ones."""
    mask = _umask()
    if Path(folder).is_file():
        os.chmod(folder, 0o666 & ~mask)
        return
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, 0o777 & ~mask)
        for name in files:
            if not (Path(root) / name).is_symlink():
                os.chmod(Path(root) / name, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp and some writers (safetensors) make 0600 files
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ fingerprints


def fingerprint(path: Path) -> dict:
    """{"size", "sha256"} of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"size": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def _files(folder: Path) -> list[str]:
    """Every file (and symlink) under `folder` but the mark, as sorted POSIX paths relative to it."""
    names = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        names += [(rel / n).as_posix() for n in files + [d for d in dirs if (Path(root) / d).is_symlink()]]
    return sorted(n for n in names if n != MARK)


def read_mark(folder: Path) -> dict | None:
    """The mark of an svd3d output folder, or None when there is none (or it is not svd3d's)."""
    try:
        mark = json.loads((Path(folder) / MARK).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("written_by") != "svd3d" or not isinstance(mark.get("files"), dict):
        return None
    return mark


def write_mark(folder: Path, job: str, names: list[str] | None = None) -> None:
    """Record files of `folder` as svd3d's: all of them (names=None), or add `names` to its existing mark."""
    folder = Path(folder)
    earlier = read_mark(folder) or {"jobs": [], "files": {}}
    mark = {"written_by": "svd3d", "jobs": earlier["jobs"], "files": earlier["files"] if names is not None else {}}
    if job not in mark["jobs"]:
        mark["jobs"].append(job)
    for name in _files(folder) if names is None else names:
        mark["files"][name] = fingerprint(folder / name)
    with atomic_file(folder / MARK) as tmp:
        tmp.write_text(json.dumps(mark, indent=1) + "\n")


def _not_ours(folder: Path, names: list[str] | None = None) -> list[str]:
    """Files of `folder` (or just `names` that exist there) that svd3d did not write or that changed since."""
    mark = read_mark(folder) or {"files": {}}
    if names is None:
        present = _files(folder)
    else:  # a name that is a folder stands for every file under it
        present = []
        for name in names:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                present += [f"{name}/{sub}" for sub in _files(path)] + (
                    [f"{name}/{MARK}"] if (path / MARK).exists() else []
                )
            elif path.exists() or path.is_symlink():
                present.append(name)
    bad = []
    for name in present:
        recorded = mark["files"].get(name)
        if recorded is None:
            bad.append(name)
        elif (folder / name).is_symlink() or fingerprint(folder / name) != recorded:
            bad.append(f"{name} (changed since svd3d wrote it)")
    return bad


# ------------------------------------------------------------------------------------------------ checks


def check_writable(path: Path) -> None:
    """The nearest existing folder above `path` must be a folder svd3d can create files in."""
    path = Path(path).absolute()
    for parent in path.parents:
        if parent.exists():
            break
    if not parent.is_dir():
        raise SVD3DError(f"cannot write {path}: {parent} is a file, not a folder; choose another output")
    try:
        fd, probe = tempfile.mkstemp(prefix=".svd3d-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SVD3DError(f"cannot write {path}: {parent} is not writable ({reason}); choose another output") from None


def check_replaceable(out: Path) -> None:
    """`out` may become a folder svd3d writes: missing, an empty folder, or a folder holding only svd3d's files."""
    out = Path(out)
    check_writable(out)
    if out.exists() and not out.is_dir():
        raise SVD3DError(f"output {out} exists and is not a folder; choose another name")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise SVD3DError(f"cannot write {out}: the folder is not writable; choose another output")
        foreign = _not_ours(out)
        if foreign:
            raise SVD3DError(
                f"output folder {out} holds files svd3d did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); svd3d only replaces its own outputs: choose a new folder"
            )


def check_addable(folder: Path, names: list[str]) -> None:
    """svd3d may write `names` into `folder` (beside whatever else is there): each is absent or svd3d's own."""
    folder = Path(folder)
    check_writable(folder / "x")
    if folder.exists() and not folder.is_dir():
        raise SVD3DError(f"output {folder} exists and is not a folder; choose another -o")
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SVD3DError(f"cannot write into {folder}: the folder is not writable; choose another -o")
        foreign = _not_ours(folder, names)
        if foreign:
            raise SVD3DError(
                f"{folder} already holds {', '.join(foreign[:3])}, which svd3d did not write; svd3d only replaces "
                "its own files: pass another -o"
            )


def check_resumable(run: Path, job: str) -> None:
    """A run folder, written into over several calls, may be new, empty, or one svd3d started for `job` (its mark
    says so; runs started before marks existed are known by their recipe.json and checkpoints/)."""
    run = Path(run)
    check_writable(run)
    if run.exists() and not run.is_dir():
        raise SVD3DError(f"run folder {run} exists and is not a folder; choose another -o")
    if run.is_dir() and any(run.iterdir()):
        mark = read_mark(run)
        legacy = mark is None and (run / "recipe.json").is_file() and (run / "checkpoints").is_dir()
        if not legacy and (mark is None or job not in mark["jobs"]):
            raise SVD3DError(
                f"{run} is not an svd3d {job} run folder (it holds files svd3d did not write); choose a new folder "
                "(an earlier run there would be resumed)"
            )


def start_run(run: Path, job: str) -> None:
    """Create the run folder `run` (if needed) and mark it as svd3d's `job` run."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    mark = read_mark(run)
    if mark is None or job not in mark["jobs"]:
        write_mark(run, job, [])


def check_file_replaceable(path: Path, record: Path | None = None, key: tuple[str, ...] = ("output_sha256",)) -> None:
    """A single-file output may be written: absent, or svd3d's own (its `record`, a JSON file, holds the file's
    hash under `key`, a path of keys: "output_sha256" for the output itself; without a record the file itself must be
    a JSON or a PNG svd3d wrote: its "written_by" or its PNG "Software" field says svd3d)."""
    path = Path(path)
    check_writable(path)
    if path.is_dir():
        raise SVD3DError(f"output {path} is a folder; choose a file name")
    for file in (path, record) if record is not None else (path,):
        if file.exists() and not file.is_file():
            raise SVD3DError(f"output {file} exists and is not a file; choose another name")
    if record is not None and record.exists() and not _is_svd3d_json(record):
        raise SVD3DError(f"{record} exists and svd3d did not write it; choose another output name")
    if path.exists():
        ours = (_is_svd3d_json(path) or _is_svd3d_png(path)) if record is None else _recorded_file(path, record, key)
        if not ours:
            raise SVD3DError(
                f"{path} exists and svd3d did not write it (or it changed since); svd3d only replaces its own "
                "outputs: choose another output name"
            )


def _recorded_file(path: Path, record: Path, key: tuple[str, ...] = ("output_sha256",)) -> bool:
    """`record` (svd3d's JSON beside a single-file output) holds `path`'s current hash under `key`."""
    if not record.is_file():
        return False
    value = _json(record)
    for name in key:
        value = value.get(name) if isinstance(value, dict) else None
    return value is not None and value == fingerprint(path)["sha256"]


def is_intact(out: Path, record: Path | None = None, key: tuple[str, ...] = ("output_sha256",)) -> bool:
    """`out` is a finished svd3d output exactly as svd3d wrote it: a folder whose mark lists every file in it,
    each present and unchanged; or a file whose `record` holds its hash under `key`."""
    out = Path(out)
    if out.is_dir():
        mark = read_mark(out)
        return bool(mark and mark["files"]) and not _not_ours(out) and all((out / n).is_file() for n in mark["files"])
    return out.is_file() and record is not None and _is_svd3d_json(record) and _recorded_file(out, record, key)


def _json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_svd3d_json(path: Path) -> bool:
    return str(_json(path).get("written_by", "")).startswith("svd3d")


def _is_svd3d_png(path: Path) -> bool:
    """A PNG whose "Software" text field names svd3d (as svd3d's plots write it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.format == "PNG" and str(img.info.get("Software", "")).startswith("svd3d")
    except (OSError, UnidentifiedImageError, ValueError):
        return False


# ------------------------------------------------------------------------------------------------ locks


_held: dict[Path, int] = {}  # output path -> how many times this process holds its lock


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the exclusive lock on the output path `out` (re-entrant within a process); another process holding it
    makes this raise at once, naming its pid."""
    import fcntl

    key = Path(out).absolute()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    check_writable(key)
    created = [p for p in reversed(key.parents) if not p.exists()]
    lock_path = key.with_name(f".{key.name}{LOCK_SUFFIX}")
    try:
        key.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise SVD3DError(
                    f"another svd3d job (pid {holder}) is writing {out}; wait for it to finish or choose another output"
                ) from None
            if _same_file(fd, lock_path):  # not a lock file another job removed while we opened it
                break
            os.close(fd)
    except OSError as err:
        _remove_empty(created)
        raise SVD3DError(f"cannot write {out}: {err.strerror or err}; choose another output") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[key] = 1
    try:
        _remove_stale(key)
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)
        _remove_empty(created)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this job created for its output, deepest first, if they are still empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_stale(out: Path) -> None:
    """Partial and old folders / files of a job on `out` that was killed: nobody else holds the lock now. With
    them go what a killed job staged for its own staging folder (`..NAME.svd3d-partial-*`: e.g. reconstruct()
    adding the mesh to the staged views, and its lock), which only that job could have held."""
    if not out.parent.is_dir():
        return
    prefixes = (f".{out.name}{PARTIAL}", f".{out.name}{OLD}", f"..{out.name}{PARTIAL}")
    for entry in out.parent.iterdir():
        if entry.name.startswith(prefixes):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def holds_output(pick: Callable[[dict], str | Path | None]):
    """Decorator for a function that writes an output: `pick(arguments)` names the output path (None: nothing is
    written); the function runs holding that path's lock, so two jobs never write one output at once."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            out = pick(bound.arguments)
            if out is None:
                return fn(*args, **kwargs)
            with locked(Path(out)):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


# ------------------------------------------------------------------------------------------------ writing


class InterruptedAfterWriting(KeyboardInterrupt):
    """Ctrl-C / SIGTERM that arrived while a finished output was being put in place: that output is complete."""


@contextlib.contextmanager
def _putting_in_place(out: Path) -> Iterator[None]:
    """The few moves that put a finished output in place, signals held back; one that arrived meanwhile is
    delivered after them as InterruptedAfterWriting, so the job can say truthfully that `out` was written."""
    signals.check()  # an interrupted job never puts its output in place, even if a library swallowed the interrupt
    done = False
    try:
        with signals.held():
            yield
            done = True
    except KeyboardInterrupt:
        if done:
            raise InterruptedAfterWriting(str(out)) from None
        raise


@contextlib.contextmanager
def _staging() -> Iterator[None]:
    """Around the work that fills a staging folder: an inner job that completed into it was completed into a
    folder about to be discarded, so its InterruptedAfterWriting becomes a plain interruption here."""
    try:
        yield
    except InterruptedAfterWriting:
        raise KeyboardInterrupt from None


@contextlib.contextmanager
def replacing(out: Path, job: str) -> Iterator[Path]:
    """Yield an empty staging folder for `out`; when the block succeeds, mark every file in it as svd3d's and swap
    it into place (an earlier svd3d output there is replaced). On any error or interruption the staging folder is
    removed and `out` is left as it was."""
    out = Path(out)
    with locked(out):
        check_replaceable(out)  # again, under the lock: what was checked before the work may have changed
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{PARTIAL}", dir=out.parent))
        try:
            with _staging():
                yield tmp
            write_mark(tmp, job)
            usual_permissions(tmp)
            old = out.with_name(f".{out.name}{OLD}{os.getpid()}")
            swapped = False
            try:
                with _putting_in_place(out):
                    if out.exists():
                        out.rename(old)
                    tmp.rename(out)
                    swapped = True
            finally:  # also when a signal held back during the swap is delivered as the block ends
                if swapped:
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def adding(folder: Path, job: str) -> Iterator[Path]:
    """Yield an empty staging folder for files to add to `folder`, beside whatever else it holds; when the block
    succeeds, move them all in (replacing svd3d's own earlier files of those names, refusing anyone else's) and
    record them in the mark, signals held back. On any error or interruption the staged files are removed and
    `folder` is left as it was."""
    folder = Path(folder)
    with locked(folder):
        created = [p for p in (*reversed(folder.absolute().parents), folder.absolute()) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}{PARTIAL}", dir=folder.parent))
        done = False
        try:
            with _staging():
                yield tmp
            names = _files(tmp)
            check_addable(folder, names)  # again, under the lock
            usual_permissions(tmp)
            with _putting_in_place(folder):
                for name in names:
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp / name, folder / name)
                write_mark(folder, job, names)
                done = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if not done:
                _remove_empty(created)


@contextlib.contextmanager
def replacing_files(paths: list[Path]) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of `paths` (same suffix); when the block succeeds, rename them all into
    place together, signals held back; on any error or interruption the temporaries are removed. The temporaries
    are named after paths[0], whose lock the job holds, so the next job there removes what a killed one left."""
    tmps = []
    try:
        for i, path in enumerate(paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            prefix = f".{paths[0].name}{PARTIAL}{i}-"
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
            os.close(fd)
            tmps.append(Path(tmp))
        with _staging():
            yield tmps
        for tmp in tmps:
            usual_permissions(tmp)
        with _putting_in_place(paths[0]):
            for tmp, path in zip(tmps, paths, strict=True):
                os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
