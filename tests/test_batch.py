"""Batch jobs (`svd3d orbit|video|recon` over many inputs): inputs, manifests, names, results, resume, failures,
and 2 CPU processes under torchrun against 1 process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from svd3d import batch
from svd3d.batch import Item, Rank, assign_names, collect_inputs, read_manifest, run_batch, shard
from svd3d.cli import main
from svd3d.errors import SVD3DError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "assets" / "examples"
ORBIT = ["--steps", "1", "--frames", "3", "--no-mesh"]  # bundled tiny-orbit, 64 px
VIDEO = ["--steps", "1", "--frames", "2", "--size", "64x64"]  # bundled tiny-video


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def results(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "results.jsonl").read_text().splitlines()]


def last_run(root: Path, n: int) -> dict[str, dict]:
    return {r["name"]: r for r in results(root)[-n:]}


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("toy_a", "toy_b"):
        shutil.copy(EXAMPLES / f"{name}.png", folder / f"{name}.png")
    (folder / "notes.md").write_text("not an input")
    return folder


# ------------------------------------------------------------------------------------------------ pure functions


def test_names_are_unique_and_independent_of_sharding(tmp_path):
    paths = ["a/chair.png", "b/chair.jpg", "chair-2.png", "c/Chair.png", "lamp.png"]
    names = assign_names([Item(tmp_path / p) for p in paths])
    assert names == ["chair", "chair-3", "chair-2", "Chair-4", "lamp"]
    assert len({n.casefold() for n in names}) == len(names)
    assert shard(5, 0, 2) == [0, 2, 4] and shard(5, 1, 2) == [1, 3] and shard(5, 0, 1) == [0, 1, 2, 3, 4]


def test_manifests_folders_and_globs(tmp_path, images):
    (tmp_path / "list.txt").write_text("# two photos\nphotos/toy_b.png\n\n  photos/toy_a.png  \n")
    items = collect_inputs([str(tmp_path / "list.txt")], "orbit")
    assert [i.input for i in items] == [images / "toy_b.png", images / "toy_a.png"]  # relative to the manifest
    assert [i.input.name for i in collect_inputs([str(images)], "orbit")] == ["toy_a.png", "toy_b.png"]
    assert [i.input.name for i in collect_inputs([str(images / "*_b.png")], "orbit")] == ["toy_b.png"]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text('{"input": "photos/toy_a.png", "seed": 3, "no-mesh": true}\n# c\n{"input": "x.png", "sedd": 1}\n')
    with pytest.raises(SVD3DError, match=r"list.jsonl:3: unknown key 'sedd'"):
        read_manifest(jsonl, {"seed", "no_mesh"})
    jsonl.write_text('{"input": "photos/toy_a.png", "seed": 3, "no-mesh": true}\n')
    assert read_manifest(jsonl, {"seed", "no_mesh"})[0].settings == {"seed": 3, "no_mesh": True}
    assert batch.is_batch([str(images)], "orbit") and not batch.is_batch([str(images / "toy_a.png")], "orbit")
    assert not batch.is_batch([str(tmp_path / "missing.png")], "orbit")  # a single job's own error, as before
    assert batch.rank_threads(Rank.from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2"})) >= 1
    assert Rank.from_env({}) == Rank()


def test_failures_are_recorded_and_interrupts_stop(tmp_path):
    items = [Item(tmp_path / f"{n}.png") for n in ("a", "b", "c")]
    for item in items:
        item.input.write_bytes(b"x")

    def job(image, out, settings):
        if image.stem == "b":
            raise ValueError("boom\nsecond line")
        out.mkdir()
        return {"work": 0.1}

    summary = run_batch("orbit", items, tmp_path / "out", job, options={}, progress=False)
    assert (summary.ok, summary.failed) == (2, 1)
    assert [(r["name"], r["status"], r["error"]) for r in results(tmp_path / "out")] == [
        ("a", "ok", None), ("b", "failed", "ValueError: boom"), ("c", "ok", None),
    ]  # fmt: skip

    def interrupted(image, out, settings):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch("orbit", items, tmp_path / "out2", interrupted, options={}, progress=False)
    assert not (tmp_path / "out2" / "results.jsonl").exists()  # the item in flight is not recorded


# ------------------------------------------------------------------------------------------------ the commands


def test_orbit_folder_resume_and_a_corrupt_image(tmp_path, images):
    root = tmp_path / "out"
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run(["orbit", str(images), *ORBIT, "-o", str(root)])
    assert r.exit_code == 1, r.output  # one failed, the others done
    assert "2 ok, 0 skipped (finished earlier), 1 failed" in r.output
    first = last_run(root, 3)
    assert first["broken"]["status"] == "failed" and "not an image Pillow can read" in first["broken"]["error"]
    assert first["toy_a"]["status"] == first["toy_b"]["status"] == "ok"
    assert (root / "toy_a" / "frames" / "002.png").is_file() and not (root / "broken").exists()
    assert first["toy_a"]["model_fingerprint"] and set(first["toy_a"]["timings_s"]) >= {"sample", "total"}

    (images / "broken.png").unlink()
    r = run(["orbit", str(images), *ORBIT, "-o", str(root)])
    assert r.exit_code == 0 and {r["status"] for r in last_run(root, 2).values()} == {"skipped"}

    shutil.rmtree(root / "toy_b")  # a deleted output is redone, the other still skipped
    r = run(["orbit", str(images), *ORBIT, "-o", str(root)])
    assert {n: r["status"] for n, r in last_run(root, 2).items()} == {"toy_a": "skipped", "toy_b": "ok"}

    r = run(["orbit", str(images), *ORBIT, "--seed", "5", "-o", str(root)])  # a changed setting: all redone
    assert {r["status"] for r in last_run(root, 2).values()} == {"ok"}
    assert json.loads((root / "toy_a" / "run.json").read_text())["settings"]["seed"] == 5


def test_jsonl_manifest_per_item_settings_and_collisions(tmp_path, images):
    other = tmp_path / "more"
    other.mkdir()
    shutil.copy(EXAMPLES / "toy_c.png", other / "toy_a.png")  # the same stem: named toy_a-2
    manifest = tmp_path / "jobs.jsonl"
    lines = [
        {"input": "photos/toy_a.png", "seed": 3, "elevation": 20, "orbit": "dynamic", "size": 64},
        {"input": "more/toy_a.png", "no-mesh": False, "method": "hull", "faces": 500, "texture": 64},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    root = tmp_path / "out"
    r = run(["orbit", str(manifest), *ORBIT, "-o", str(root)])
    assert r.exit_code == 0, r.output
    first = json.loads((root / "toy_a" / "run.json").read_text())
    assert first["settings"]["seed"] == 3 and first["settings"]["orbit"] == "dynamic"
    assert first["cameras"]["elevations_deg"][0] == 20 and not (root / "toy_a" / "mesh.glb").exists()
    second = json.loads((root / "toy_a-2" / "recon.json").read_text())
    assert second["settings"]["method"] == "hull" and second["settings"]["texture"] == 64
    assert (root / "toy_a-2" / "mesh.glb").is_file()

    manifest.write_text('{"input": "photos/toy_a.png", "model": "tiny-orbit"}\n')  # batch-wide: refused
    r = CliRunner().invoke(main, ["orbit", str(manifest), *ORBIT, "-o", str(root)])
    assert r.exit_code == 2 and "jobs.jsonl:1: unknown key 'model'" in r.output


def test_video_glob_txt_and_recon_batch(tmp_path, images):
    root = tmp_path / "clips"
    r = run(["video", str(images / "toy_*.png"), *VIDEO, "-o", str(root)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in root.iterdir()) == [
        ".svd3d.json",
        "index.html",
        "results.jsonl",
        "toy_a.mp4",
        "toy_a.run.json",
        "toy_b.mp4",
        "toy_b.run.json",
    ]  # fmt: skip (index.html: the batch's page, recorded in ROOT's mark)
    (tmp_path / "list.txt").write_text("photos/toy_b.png\n")
    r = run(["video", str(tmp_path / "list.txt"), *VIDEO, "--format", "frames", "-o", str(root)])
    assert r.exit_code == 0 and (root / "toy_b" / "001.png").is_file()

    views = tmp_path / "views"
    assert run(["orbit", str(images), *ORBIT, "-o", str(views)]).exit_code == 0
    meshes = tmp_path / "meshes"
    r = run(["recon", str(views), "--method", "hull", "--faces", "500", "--texture", "64", "-o", str(meshes)])
    assert r.exit_code == 0, r.output
    assert (meshes / "toy_a" / "mesh.glb").is_file() and (meshes / "toy_b" / "recon.json").is_file()
    assert {r["status"] for r in results(meshes)} == {"ok"}


def test_two_processes_share_the_work(tmp_path, images):
    """torchrun with 2 CPU processes against 1 process: the same outputs, each item done once, the same views."""
    shutil.copy(EXAMPLES / "toy_c.png", images / "toy_c.png")
    # CPU kernels split their sums by thread count, so the last bits of a float depend on it: the lone process runs
    # with the 1 thread each of the 2 gets (2 cores // 2 processes); then the views must match bit for bit
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["-m", "svd3d", "-q", "orbit", str(images), *ORBIT]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    for cmd, root, threads in (([sys.executable, *args], one, "1"), ([*launch, *args], two, "2")):
        done = subprocess.run(
            [*cmd, "-o", str(root)],
            env={**env, "OMP_NUM_THREADS": threads},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    records = results(two)
    assert sorted(r["name"] for r in records) == ["toy_a", "toy_b", "toy_c"]  # each item exactly once
    assert {r["status"] for r in records} == {"ok"} and {r["rank"] for r in records} == {0, 1}
    for name in ("toy_a", "toy_b", "toy_c"):
        for i in range(3):
            frame = f"{name}/frames/{i:03d}.png"
            assert (one / frame).read_bytes() == (two / frame).read_bytes(), frame
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
