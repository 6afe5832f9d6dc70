"""The output contract (svd3d.outputs), swept over every writing command.

Every command that writes x {missing, empty, user-owned, svd3d-owned, svd3d-owned-then-edited, parent-is-a-file,
read-only} output, a lock held by another job, and SIGINT / SIGTERM / SIGKILL at each stage of a generation: svd3d
writes only where it may, replaces only what it wrote, refuses in one line before any work, and an interrupted job
leaves the earlier output byte-identical with nothing hidden left behind.

Compute is kept tiny (16-32 px, one sampling step, hull meshes); each real output is made once per module and
copied where a test needs an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from svd3d.cli import main
from svd3d.outputs import LOCK_SUFFIX, MARK, OLD, PARTIAL

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "assets" / "examples" / "toy_a.png"
NOBODY = 65534
SETPRIV = shutil.which("setpriv")

# ------------------------------------------------------------------------------------------------ helpers


def cli(args: list) -> tuple[object, float]:
    """Run the CLI in-process; returns the result and its wall time."""
    start = time.perf_counter()
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result, time.perf_counter() - start


def tree(path: Path) -> dict[str, str]:
    """Every entry under `path` (hidden ones too): relative name -> sha256 of a file, 'dir' for a folder."""
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for root, dirs, files in os.walk(path):
        rel = Path(root).relative_to(path)
        for d in dirs:
            out[(rel / d).as_posix()] = "dir"
        for f in files:
            out[(rel / f).as_posix()] = hashlib.sha256((Path(root) / f).read_bytes()).hexdigest()
    return out


def hidden(folder: Path) -> list[str]:
    """Names in `folder` that start with '.' (staging, old, lock or probe files of a job)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def leftovers(parent: Path) -> list[str]:
    """svd3d's hidden working files in `parent`: partial and old folders, locks."""
    return [n for n in hidden(parent) if PARTIAL in n or OLD in n or n.endswith(LOCK_SUFFIX) or "svd3d-probe" in n]


def stderr_lines(result) -> list[str]:
    text = result.stderr if hasattr(result, "stderr") else result
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()]


def assert_refused(result, *needles: str, code: int = 2) -> None:
    """Exit `code`, and exactly one line on stderr, an error naming every needle."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{result.output}"
    lines = stderr_lines(result)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines)
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.output


def png_bytes(seed: int, size: int = 8) -> bytes:
    """A small real PNG (a user's photo stands in)."""
    import io

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def mark_files(folder: Path) -> dict:
    mark = json.loads((Path(folder) / MARK).read_text())
    assert mark["written_by"] == "svd3d"
    return mark


# ------------------------------------------------------------------------------------------------ inputs


@pytest.fixture(scope="module")
def inputs() -> dict[str, Path]:
    """Inputs every command reads, in a folder the unprivileged user can read (0755 up to /tmp)."""
    import trimesh

    from svd3d.models.diffusers_io import save_diffusers
    from svd3d.models.tiny import tiny_random_model
    from svd3d.render import render_to_folder

    base = Path(tempfile.mkdtemp(prefix="svd3d-test-outputs-inputs-"))
    base.chmod(0o755)
    shutil.copy(TOY, base / "toy_a.png")
    mesh = base / "box.ply"
    trimesh.creation.box(extents=(0.8, 0.5, 0.3)).export(mesh)
    views = render_to_folder(mesh, (np.full(6, 10.0), np.arange(6) * 60.0), base / "views", size=32, supersample=1)
    save_diffusers(tiny_random_model("video", seed=0), base / "tiny-model")
    recipe = base / "debug.toml"
    shutil.copy(REPO / "recipes" / "debug.toml", recipe)
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(Path(root) / d, 0o755)
        for f in files:
            os.chmod(Path(root) / f, 0o644)
    yield {"image": base / "toy_a.png", "mesh": mesh, "views": views, "model": base / "tiny-model", "recipe": recipe}
    shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the commands

VIDEO = ["--model", "random-tiny-video", "--frames", "2", "--steps", "1", "--size", "16x16", "--device", "cpu"]
ORBIT = ["--steps", "1", "--frames", "6", "--device", "cpu"]
HULL = ["--method", "hull", "--faces", "500", "--texture", "64"]


@dataclass(frozen=True)
class Command:
    """A writing command: its arguments for an output OUT, a folder that merely looks like its output (the user's
    own files), and the words of its refusal of such a folder."""

    name: str
    args: Callable[[dict, Path], list]  # (inputs, out) -> CLI arguments
    lookalike: dict[str, bytes]  # relative path -> the user's bytes
    refusal: str = "svd3d did not write"
    writes: bool = True  # False: only the up-front refusals are tested (train)
    seed_flag: tuple = ()  # how a second run differs from the first (so a replacement is visible)
    edit: str = "run.json"  # a file of its output the user edits


COMMANDS = [
    Command(
        "video",
        lambda i, out: ["video", i["image"], *VIDEO, "-o", out],
        {"000.png": png_bytes(0), "001.png": png_bytes(1), "002.png": png_bytes(2)},
        seed_flag=("--seed", "7"),
    ),
    Command(
        "orbit",
        lambda i, out: ["orbit", i["image"], *ORBIT, "--size", "32", "--no-mesh", "-o", out],
        {"frames/000.png": png_bytes(3), "frames/001.png": png_bytes(4)},
        seed_flag=("--seed", "7"),
        edit="frames/001.png",
    ),
    Command(
        "orbit+mesh",
        lambda i, out: ["orbit", i["image"], *ORBIT, *HULL, "-o", out],
        {"frames/000.png": png_bytes(5), "mesh.glb": b"glTF my own model"},
        seed_flag=("--seed", "7"),
        edit="mesh.glb",
    ),
    Command(
        "recon",
        lambda i, out: ["recon", i["views"], *HULL, "--device", "cpu", "-o", out],
        {"mesh.glb": b"glTF my own model", "preview.png": png_bytes(6)},
        seed_flag=("--faces", "400"),
        edit="recon.json",
    ),
    Command(
        "render",
        lambda i, out: ["render", i["mesh"], "--size", "32", "--frames", "4", "--supersample", "1", "-o", out],
        {"images/000.png": png_bytes(7)},
        seed_flag=("--elevation", "20"),
        edit="transforms.json",
    ),
    Command(
        "convert",
        lambda i, out: ["convert", i["model"], out],
        {"model_index.json": b'{"_class_name": "mine"}\n'},
        seed_flag=("--dtype", "float16"),
        edit="model_index.json",
    ),
    Command(
        "data",
        lambda i, out: ["data", "procedural", "-o", out, "--count", "1", "--size", "16", "--frames", "3"],
        {"frames.npy": b"\x93NUMPY my own array"},
        seed_flag=("--seed", "7"),
        edit="manifest.json",
    ),
    Command(
        "train",
        lambda i, out: ["train", i["recipe"], "-o", out, "--device", "cpu"],
        {"checkpoints/000001/state.json": b'{"step": 1}\n', "notes.txt": b"my run\n"},
        refusal="is not an svd3d train run folder",
        writes=False,
    ),
]
WRITERS = [c for c in COMMANDS if c.writes]


def ids(commands):
    return [c.name for c in commands]


@pytest.fixture(scope="module")
def made(inputs, tmp_path_factory):
    """Each command's output, made once (into a missing path) and reused: made(command) -> the folder."""
    base = tmp_path_factory.mktemp("made")
    cache: dict[str, Path] = {}

    def make(command: Command) -> Path:
        if command.name not in cache:
            out = base / command.name.replace("+", "-") / "out"
            out.parent.mkdir()
            result, _ = cli(command.args(inputs, out))
            assert_ok(result)
            cache[command.name] = out
        return cache[command.name]

    return make


def copy_output(src: Path, dst: Path) -> Path:
    """A copy of an svd3d output (the mark names relative paths: the copy is svd3d's too)."""
    shutil.copytree(src, dst)
    return dst


def user_folder(path: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write the user's files; returns the fingerprints of the folder."""
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return tree(path)


# ------------------------------------------------------------------------------------------------ 1, 2, 4: free and own


@pytest.mark.parametrize("command", WRITERS, ids=ids(WRITERS))
def test_missing_output_is_written_and_marked(command, made):
    out = made(command)
    mark = mark_files(out)
    written = {k for k, v in tree(out).items() if v != "dir"} - {MARK}
    assert written and written == set(mark["files"]), "the mark lists exactly the files svd3d wrote"
    for name, record in mark["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == record["sha256"], name
    assert leftovers(out.parent) == [] and hidden(out) == [MARK]


# an empty folder is free for every command; orbit+mesh takes the same check and swap as orbit (views only), and a
# generation with a mesh is the slowest thing here, so it is left to the orbit row
EMPTY = [c for c in WRITERS if c.name != "orbit+mesh"]


@pytest.mark.parametrize("command", EMPTY, ids=ids(EMPTY))
def test_empty_folder_is_written(command, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result, _ = cli(command.args(inputs, out))
    assert_ok(result)
    assert (out / MARK).is_file() and len(tree(out)) > 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", WRITERS, ids=ids(WRITERS))
def test_own_output_is_replaced(command, inputs, made, tmp_path):
    before = tree(made(command))
    out = copy_output(made(command), tmp_path / "out")
    result, _ = cli([*command.args(inputs, out), *command.seed_flag])
    assert_ok(result)
    after = tree(out)
    assert after != before, "the second run (other settings) replaced the first"
    assert set(mark_files(out)["files"]) == {k for k, v in after.items() if v != "dir"} - {MARK}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", WRITERS, ids=ids(WRITERS))
def test_own_output_the_user_edited_is_refused(command, inputs, made, tmp_path):
    out = copy_output(made(command), tmp_path / "out")
    with (out / command.edit).open("ab") as fh:
        fh.write(b"\n my edit \n")
    before, parent = tree(out), hidden(tmp_path)
    result, _ = cli(command.args(inputs, out))
    assert_refused(result, "svd3d did not write", command.edit)
    assert tree(out) == before and hidden(tmp_path) == parent


# ------------------------------------------------------------------------------------------------ 3, 5: not svd3d's


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_user_folder_that_looks_like_an_output_is_refused(command, inputs, tmp_path):
    out = tmp_path / "out"
    before = user_folder(out, command.lookalike)
    parent = sorted(p.name for p in tmp_path.iterdir())
    result, _ = cli(command.args(inputs, out))
    assert_refused(result, command.refusal)
    assert tree(out) == before, "every user file byte-identical, nothing added"
    assert sorted(p.name for p in tmp_path.iterdir()) == parent


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_parent_is_a_file(command, inputs, tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_bytes(b"mine")
    result, _ = cli(command.args(inputs, blocker / "out"))
    assert_refused(result, "some_file")
    assert blocker.read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == ["some_file"]


# ------------------------------------------------------------------------------------------------ 6: not writable

DRIVER = """
import json, os, sys
from click.testing import CliRunner
from svd3d.cli import main
results = [{"uid": os.getuid()}]
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    results.append({"code": r.exit_code, "stderr": r.stderr, "output": r.output})
print(json.dumps(results))
"""


def nobody_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_", "TORCH", "PYTHON"))}
    env.update(
        HOME=str(home),
        HF_HOME=str(home / "hf"),
        HF_HUB_OFFLINE="1",
        XDG_CACHE_HOME=str(home / "cache"),
        MPLCONFIGDIR=str(home / "mpl"),
        TORCHINDUCTOR_CACHE_DIR=str(home / "inductor"),
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
    )
    return env


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is missing: cannot run the CLI as another user")
def test_read_only_output_is_refused_before_any_work(inputs):
    """Root ignores permission bits, so every command runs as `nobody` (one process, to pay the imports once)
    with its output inside a 0555 folder."""
    base = Path(tempfile.mkdtemp(prefix="svd3d-test-outputs-ro-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        ro = base / "ro"
        ro.mkdir()
        (ro / "earlier").mkdir()  # an existing (user's) folder in there too
        ro.chmod(0o555)
        runs = [[str(a) for a in c.args(inputs, ro / "out")] for c in COMMANDS]
        runs.append(["video", str(inputs["image"]), *VIDEO, "-o", str(ro / "clip.mp4")])
        runs.append(["recon", str(inputs["views"]), *HULL, "-o", str(ro / "sub" / "deeper")])
        names = [*ids(COMMANDS), "video clip.mp4", "recon into a new subfolder"]
        before = tree(base / "ro")
        probe = subprocess.run(
            [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c", "import svd3d"],
            cwd=home, env=nobody_env(home), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if probe.returncode != 0:  # e.g. a venv under a 0700 mktemp folder (.ci/run makes its venv readable)
            pytest.skip(f"an unprivileged user cannot run this Python / checkout: {stderr_lines(probe.stderr)[-1:]}")
        start = time.perf_counter()
        proc = subprocess.run(
            [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c", DRIVER,
             json.dumps(runs)],
            cwd=home, env=nobody_env(home), capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        assert proc.returncode == 0, f"the driver failed as nobody (is the venv / repo readable?):\n{proc.stderr}"
        who, *results = json.loads(proc.stdout.strip().splitlines()[-1])
        assert who["uid"] == NOBODY
        problems = []
        for name, r in zip(names, results, strict=True):
            lines = stderr_lines(r["stderr"])
            if r["code"] != 2 or len(lines) != 1 or "not writable" not in lines[0]:
                problems.append(f"{name}: exit {r['code']}, stderr {lines}")
        assert not problems, "expected exit 2 and one line 'not writable':\n" + "\n".join(problems)
        assert tree(base / "ro") == before
        assert seconds < 120, f"refusals took {seconds:.0f} s: work was done before the check"
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_output_under_proc_is_refused(command, inputs):
    out = Path("/proc/svd3d-out")
    result, _ = cli(command.args(inputs, out))
    assert_refused(result, "/proc")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ 7: a single clip file

CLIP_VIDEO = ["--model", "random-tiny-video", "--frames", "2", "--steps", "1", "--size", "16x16", "--device", "cpu"]


def video_clip(inputs, out, *extra):
    return cli(["video", inputs["image"], *CLIP_VIDEO, *extra, "-o", out])[0]


@pytest.fixture(scope="module")
def clip(inputs, tmp_path_factory) -> Path:
    """An svd3d clip written into a missing path, with its record."""
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    assert_ok(video_clip(inputs, out))
    return out


def test_clip_is_written_with_its_record(clip):
    record = json.loads(clip.with_name("clip.run.json").read_text())
    assert record["output_sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4", "clip.run.json"]


def test_users_clip_is_refused(inputs, tmp_path):
    mine = tmp_path / "clip.mp4"
    mine.write_bytes(np.random.default_rng(0).bytes(4096))
    before = tree(tmp_path)
    assert_refused(video_clip(inputs, mine), "svd3d did not write")
    assert tree(tmp_path) == before


def test_users_record_beside_a_new_clip_is_refused(inputs, tmp_path):
    (tmp_path / "clip.run.json").write_text('{"my": "notes"}\n')
    before = tree(tmp_path)
    assert_refused(video_clip(inputs, tmp_path / "clip.mp4"), "svd3d did not write")
    assert tree(tmp_path) == before


def test_svd3d_clip_is_replaced(inputs, clip, tmp_path):
    for f in (clip, clip.with_name("clip.run.json")):
        shutil.copy(f, tmp_path / f.name)
    out = tmp_path / "clip.mp4"
    assert_ok(video_clip(inputs, out, "--seed", "7"))
    record = json.loads((tmp_path / "clip.run.json").read_text())
    assert record["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() != tree(clip)["."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.run.json"]


def test_svd3d_clip_the_user_edited_is_refused(inputs, clip, tmp_path):
    for f in (clip, clip.with_name("clip.run.json")):
        shutil.copy(f, tmp_path / f.name)
    with (tmp_path / "clip.mp4").open("ab") as fh:
        fh.write(b"re-encoded")
    before = tree(tmp_path)
    assert_refused(video_clip(inputs, tmp_path / "clip.mp4"), "svd3d did not write")
    assert tree(tmp_path) == before


def test_clip_under_a_file_is_refused(inputs, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    assert_refused(video_clip(inputs, tmp_path / "f" / "clip.mp4"), "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


# ------------------------------------------------------------------------------------------------ 8: one job per output

HOLDER = """
import sys
from pathlib import Path
from svd3d.outputs import locked
with locked(Path(sys.argv[1])):
    print("ready", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder():
    """holder(out): another process holds the lock on `out` until the test ends (or release() is called)."""
    procs = []

    def hold(out: Path):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        ready = _readline(proc.stdout, 60)
        assert ready == "ready", f"the lock holder did not start (got {ready!r})"

        def release():
            proc.stdin.close()
            proc.wait(timeout=30)

        return proc, release

    yield hold
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _readline(stream, timeout: float) -> str | None:
    box: list = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else None


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_second_job_on_a_locked_output_is_refused(command, inputs, made, holder, tmp_path):
    out = copy_output(made(command), tmp_path / "out") if command.writes else tmp_path / "out"
    before = tree(out) if out.exists() else None
    proc, release = holder(out)
    result, _ = cli(command.args(inputs, out))
    assert_refused(result, f"another svd3d job (pid {proc.pid})")
    assert (tree(out) if out.exists() else None) == before
    release()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.name == "render"], ids=["render"])
def test_output_is_free_once_the_other_job_ends(command, inputs, holder, tmp_path):
    out = tmp_path / "out"
    _, release = holder(out)
    release()
    result, _ = cli(command.args(inputs, out))
    assert_ok(result)
    assert (out / MARK).is_file() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ 9: interruption


@dataclass
class Job:
    """`python -m svd3d ...` in a subprocess, its stderr collected as it comes."""

    args: list
    proc: subprocess.Popen = field(init=False)
    err: bytearray = field(default_factory=bytearray)

    def __post_init__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svd3d", *map(str, self.args)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while chunk := self.proc.stderr.read1(4096):
            self.err += chunk

    @property
    def text(self) -> str:
        return self.err.decode(errors="replace")

    def wait_for(self, *markers: str, timeout: float = 120) -> None:
        """Block until stderr shows one of `markers` (a stage has begun); fail clearly on a timeout or an exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.text.replace("\r", "\n").splitlines()
            if any(line.lstrip().startswith(markers) for line in lines):
                return
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"the job ended (exit {self.proc.returncode}) before {markers} appeared:\n{self.text}")
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"no stage marker {markers} within {timeout:.0f} s; stderr so far:\n{self.text}")

    def finish(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the job did not end within {timeout:.0f} s of the signal:\n{self.text}")
        self._reader.join(10)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def still_within(self, past: tuple[str, ...]) -> bool:
        """Stop the job (SIGSTOP) and tell whether it is still inside its stage: alive, and no `past` line (the
        stage has ended) among all it wrote before it stopped."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while _unread(self.proc.stderr) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # the reader appends what it read last
        lines = self.text.replace("\r", "\n").splitlines()
        return self.proc.poll() is None and not any(line.lstrip().startswith(past) for line in lines)


def _unread(pipe) -> int:
    """Bytes waiting in a pipe."""
    import fcntl
    import termios

    count = bytearray(4)
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, count)
    return int.from_bytes(count, sys.byteorder)


# stage name -> (command, the stage's first lines, lines that show it has ended): orbit's views stage is announced by
# its "orbit:" log line (the sampling bar follows), its mesh stage by "recon:" and its end by the quality line;
# video's sampling by its progress bar
STAGES = {
    "orbit views": (
        lambda i, out: ["orbit", i["image"], "--steps", "3", *HULL, "--device", "cpu", "-o", out],
        ("orbit:", "sampling"),
        ("recon:",),
    ),
    "orbit mesh": (
        lambda i, out: ["orbit", i["image"], *ORBIT, *HULL, "-o", out],
        ("recon:",),
        ("recon: silhouette",),
    ),
    "video sampling": (
        lambda i, out: [
            "video",
            i["image"],
            *VIDEO[:4],
            "--steps",
            "40",
            "--size",
            "16x16",
            "--device",
            "cpu",
            "-o",
            out,
        ],  # fmt: skip
        ("sampling",),
        ("sampling: 100%", "wrote"),
    ),
}
SIGNALS = {"SIGINT": (signal.SIGINT, 130, "interrupted: nothing was written"),
           "SIGTERM": (signal.SIGTERM, 143, "terminated: nothing was written")}  # fmt: skip


def signal_within(stage: str, signum: int, inputs, output: Callable[[int], Path]) -> tuple[Job, Path]:
    """Run `stage`'s command (seed 5) into `output(attempt)` and send `signum` while the job is inside the stage.

    Once the stage's first line shows, the job is frozen (SIGSTOP) and looked at: if it is still inside the stage
    it gets the signal and goes on (SIGCONT: a stopped process takes its pending signal as it resumes). A job
    found past the stage (a slow test runner can see the line seconds late) is killed, and the attempt is made
    again into a fresh output."""
    command, markers, past = STAGES[stage]
    for attempt in range(3):
        out = output(attempt)
        job = Job([*command(inputs, out), "--seed", "5"])
        job.wait_for(*markers)
        if job.still_within(past):
            job.proc.send_signal(signum)
            job.proc.send_signal(signal.SIGCONT)
            return job, out
        job.kill()
    pytest.fail(f"the job was past its {stage} stage each time that stage's first line was seen:\n{job.text}")


@pytest.mark.parametrize("signame", list(SIGNALS))
@pytest.mark.parametrize("stage", list(STAGES))
def test_interrupted_job_leaves_the_earlier_output(stage, signame, inputs, made, tmp_path):
    signum, code, last = SIGNALS[signame]
    earlier = made(COMMANDS[2] if stage.startswith("orbit") else COMMANDS[0])  # orbit+mesh / video, seed 23
    before = tree(earlier)
    job, out = signal_within(stage, signum, inputs, lambda n: copy_output(earlier, tmp_path / str(n) / "out"))
    try:
        assert job.finish() == code, job.text
    finally:
        job.kill()
    lines = stderr_lines(job.text)
    assert lines and lines[-1].startswith(last), f"last stderr line: {lines[-1:]}\n{job.text}"
    assert "Traceback" not in job.text, job.text
    assert tree(out) == before, "the earlier output is byte-identical"
    assert hidden(out.parent) == [], f"left behind: {hidden(out.parent)}"


def test_killed_job_leaves_a_partial_the_next_job_removes(inputs, made, tmp_path):
    earlier = made(COMMANDS[2])
    before = tree(earlier)
    job, out = signal_within(
        "orbit mesh", signal.SIGKILL, inputs, lambda n: copy_output(earlier, tmp_path / str(n) / "out")
    )
    try:
        assert job.finish() == -signal.SIGKILL
    finally:
        job.kill()
    assert tree(out) == before
    partials = [n for n in hidden(out.parent) if n.startswith(f".out{PARTIAL}")]
    assert partials, f"a killed job leaves its staging folder (found {hidden(out.parent)})"
    assert any((out.parent / p / "frames").is_dir() for p in partials), "the views were staged when it was killed"
    result, _ = cli(COMMANDS[1].args(inputs, out))  # the next job on that path: orbit, views only
    assert_ok(result)
    assert hidden(out.parent) == [], f"left behind: {hidden(out.parent)}"
    assert not (out / "mesh.glb").exists() and (out / "frames").is_dir()


# ------------------------------------------------------------------------------------------------ 10: options first


@pytest.mark.parametrize("bad", [["--faces", "0"], ["--height", "-1"], ["--texture", "3"]], ids=lambda b: b[0])
def test_bad_mesh_options_are_refused_before_generation(bad, inputs, made, tmp_path):
    out = copy_output(made(COMMANDS[2]), tmp_path / "out")
    before = tree(out)
    result, seconds = cli(["orbit", inputs["image"], "--steps", "50", *HULL, *bad, "-o", out])
    assert_refused(result, bad[0])
    assert "sampling" not in result.output and "orbit:" not in result.output
    assert seconds < 20, f"the refusal took {seconds:.1f} s (50 sampling steps of 21 views were asked for)"
    assert tree(out) == before and hidden(tmp_path) == []


# ------------------------------------------------------------------------------------------------ 11: recon in place


def test_recon_into_the_orbit_folder_it_was_made_from(inputs, made, tmp_path):
    out = copy_output(made(COMMANDS[1]), tmp_path / "orbit")  # views only
    views_before = {k: v for k, v in tree(out).items() if k.startswith("frames")}
    result, _ = cli(["recon", out, *HULL, "--device", "cpu"])
    assert_ok(result)
    mark = mark_files(out)
    assert {"mesh.glb", "preview.png", "recon.json"} <= set(mark["files"]) and "recon" in mark["jobs"]
    assert set(mark["files"]) == {k for k, v in tree(out).items() if v != "dir"} - {MARK}
    assert {k: v for k, v in tree(out).items() if k.startswith("frames")} == views_before
    assert hidden(tmp_path) == [] and hidden(out) == [MARK]
    # and the folder, views and mesh, is still svd3d's: an orbit may replace it
    result, _ = cli(COMMANDS[1].args(inputs, out))
    assert_ok(result)


def test_recon_into_a_users_folder_with_a_mesh_is_refused(inputs, tmp_path):
    out = tmp_path / "mine"
    before = user_folder(out, {"mesh.glb": b"glTF my own model", "notes.txt": b"keep"})
    result, _ = cli(["recon", inputs["views"], *HULL, "--device", "cpu", "-o", out])
    assert_refused(result, "mesh.glb", "svd3d did not write")
    assert tree(out) == before and hidden(tmp_path) == []


@pytest.mark.parametrize("signame", list(SIGNALS))
def test_signal_between_the_two_renames_of_the_swap(signame, tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM landing between `out -> .old` and `staging -> out`, in a process with other threads (torch's
    and tqdm's are there in every real job: the OS may hand them the signal): the swap completes (the new output in
    place, whole) or never starts; never an output moved aside, and no hidden `.old` folder left behind."""
    from svd3d import outputs, signals

    out = tmp_path / "out"
    with outputs.replacing(out, "test") as tmp:
        (tmp / "a.txt").write_text("earlier")
    signum = SIGNALS[signame][0]
    as_the_cli_does = signals.caught()
    as_the_cli_does.__enter__()
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, daemon=True)
    other.start()
    rename = Path.rename

    def rename_then_signal(self, target):
        moved = rename(self, target)
        if self == out:  # the earlier output was just moved aside
            os.kill(os.getpid(), signum)
        return moved

    monkeypatch.setattr(Path, "rename", rename_then_signal)
    try:
        # delivered once the output is in place, saying so (the CLI then reports it written, not "nothing written")
        with pytest.raises(outputs.InterruptedAfterWriting, match=str(out)):
            with outputs.replacing(out, "test") as tmp:
                (tmp / "a.txt").write_text("new")
    finally:
        monkeypatch.undo()
        as_the_cli_does.__exit__(None, None, None)
        idle.set()
    assert (out / "a.txt").read_text() == "new" and (out / MARK).is_file()
    assert hidden(tmp_path) == [], f"left behind: {hidden(tmp_path)}"


LOADING = {  # modules that must not lose a Ctrl-C while they load mid-job: what each does with it
    # open3d, xatlas: native extensions would turn it into ImportError 'initialization failed'
    "native": "import time\ntime.sleep(0.5)\n",
    # trimesh loads its optional parts in `try: ... except BaseException`: the job would go on and write its output
    "swallows": "import time\ntry:\n    time.sleep(0.5)\nexcept BaseException:\n    pass\n",
}


@pytest.mark.parametrize("kind", list(LOADING))
def test_a_module_loaded_mid_job_is_not_interrupted_and_the_interrupt_not_lost(kind, tmp_path, monkeypatch):
    """Ctrl-C while such a module loads is delivered once it has loaded (signals.import_whole), as the
    interruption it is."""
    from svd3d import signals

    name = f"loading_{kind}"
    (tmp_path / f"{name}.py").write_text(LOADING[kind] + "LOADED = True\n")
    monkeypatch.syspath_prepend(tmp_path)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    with signals.caught() as received:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            signals.import_whole(name)
    assert sys.modules.pop(name).LOADED and received == [signal.SIGINT]


@pytest.mark.parametrize("signame", list(SIGNALS))
def test_an_output_is_not_put_in_place_after_an_interrupt_a_library_swallowed(signame, tmp_path):
    """Whatever swallowed the KeyboardInterrupt, a job that was sent SIGINT / SIGTERM never puts its output in place
    (the earlier output stays as it was, nothing staged is left), and the interrupt comes again there."""
    from svd3d import outputs, signals

    out = tmp_path / "out"
    with outputs.replacing(out, "test") as staged:
        (staged / "a.txt").write_text("earlier")
    before = tree(out)
    with signals.caught() as received, pytest.raises(KeyboardInterrupt):
        with outputs.replacing(out, "test") as staged:
            try:
                signal.raise_signal(SIGNALS[signame][0])
            except BaseException:  # as trimesh's optional imports do
                pass
            (staged / "a.txt").write_text("later")
    assert received == [SIGNALS[signame][0]]
    assert tree(out) == before and hidden(tmp_path) == []


@pytest.mark.parametrize("signame", list(SIGNALS))
def test_an_error_raised_while_being_interrupted_is_reported_as_the_interruption(signame, capsys):
    """A library that catches the KeyboardInterrupt and raises its own error (pybind11's 'initialization failed')
    must not turn Ctrl-C / SIGTERM into 'error: ... install it' and exit 2."""
    from svd3d import cli as svd3d_cli
    from svd3d.errors import SVD3DError

    signum, code, last = SIGNALS[signame]

    def job():
        try:
            signal.raise_signal(signum)
        except KeyboardInterrupt:
            raise SVD3DError("rendering needs open3d (pip install open3d): initialization failed") from None

    with pytest.raises(SystemExit) as exited:
        svd3d_cli._run(job)
    assert exited.value.code == code
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(last)


@pytest.mark.parametrize("at", ["preview"])  # also "recon.json" (the last write before the mark): same failure
def test_recon_in_place_interrupted_after_the_mesh_is_exported(at, inputs, made, tmp_path, monkeypatch):
    """recon writes into the orbit folder it reads (beside the views, not staged): Ctrl-C after mesh.glb is
    exported, while the preview is drawn or recon.json written, must leave the folder as it was (exit 130, the
    'nothing was written' line true), not a mesh.glb the mark does not list (which would make svd3d's own folder
    look like the user's and block the next recon and orbit there)."""
    from svd3d import media

    out = copy_output(made(COMMANDS[1]), tmp_path / "orbit")  # views only
    before = tree(out)
    target = "contact_sheet" if at == "preview" else "write_json"
    real = getattr(media, target)

    def ctrl_c(*args, **kwargs):
        if target == "write_json" and not str(args[0]).endswith("recon.json"):
            return real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(media, target, ctrl_c)
    result, _ = cli(["recon", out, *HULL, "--device", "cpu"])
    monkeypatch.undo()
    assert result.exit_code == 130, result.output
    assert stderr_lines(result)[-1].startswith("interrupted: nothing was written")
    assert tree(out) == before, f"added: {sorted(set(tree(out)) - set(before))}"
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("entry", ["run", "main"])
def test_an_interrupted_job_exits_130_even_after_a_native_module_saw_the_interrupt(entry, tmp_path):
    """CPython remembers a KeyboardInterrupt that passed through Python code a native module ran as a string
    (pybind11's py::exec: open3d, xatlas) and then ends the process by SIGINT (-2), whatever exit code svd3d chose:
    the CI failure of 'orbit mesh' interrupted. It counts when the command runs as a module (`python -m svd3d`, as
    `accelerate launch -m svd3d` and these tests run it). The flag is set here as such a module leaves it (CPython
    3.10-3.11 export it); the `svd3d` command (`run`) still exits 130, click's `main` alone does not."""
    import ctypes

    try:
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except ValueError:
        pytest.skip("this CPython keeps the flag out of reach (3.12+: in its runtime state)")
    (tmp_path / "interrupt_me.py").write_text(f"""
import ctypes, signal, sys
from svd3d import cli

def job():
    ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 1
    signal.raise_signal(signal.SIGINT)

cli.main.command("interrupt-me")(lambda: cli._run(job))
sys.argv = ["svd3d", "interrupt-me"]
cli.{entry}()
""")
    done = subprocess.run([sys.executable, "-m", "interrupt_me"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # fmt: skip
    assert done.stderr.strip().splitlines()[-1].startswith("interrupted: nothing was written"), done.stderr
    assert done.returncode == (130 if entry == "run" else -signal.SIGINT), done.stderr
