"""svd3d.training datasets: the on-disk contract (round trip, memory maps, manifest checks), procedural objects and
orbits, rendering mesh folders, synthetic clips and their motion buckets, the video folder loader, `svd3d data`,
every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from svd3d.batch import Rank
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.render import render_views
from svd3d.training import meshes as meshes_module
from svd3d.training.clips import FPS_CHOICES, random_scene, render_scene, synthetic_clips
from svd3d.training.data import ClipData, OrbitData, RenderOrbitSettings, load_dataset, motion_bucket
from svd3d.training.meshes import render_object_orbits, render_orbit_dataset
from svd3d.training.procedural import procedural_orbit_dataset, random_object
from svd3d.training.videos import DEFAULT_FOLDER_FPS, load_video_folder


def orbit_data(n=4, t=3, size=8, objects=None, seed=0) -> OrbitData:
    rng = np.random.default_rng(seed)
    names = [f"{objects[i] if objects else f'obj{i}'}#{i}" for i in range(n)]
    return OrbitData(
        frames=rng.integers(0, 256, (n, t, size, size, 3), dtype=np.uint8),
        elevations=rng.uniform(-5, 30, (n, t)).astype(np.float32),
        azimuths=np.tile(np.arange(t, dtype=np.float32) * 360 / t, (n, 1)),
        names=names,
        masks=rng.integers(0, 256, (n, t, size, size), dtype=np.uint8),
        source={"generator": "test", "seed": seed},
    )


def clip_data(n=3, t=4, size=8) -> ClipData:
    rng = np.random.default_rng(1)
    return ClipData(
        frames=rng.integers(0, 256, (n, t, size, size, 3), dtype=np.uint8),
        fps=np.full(n, 8, np.float32),
        motion=np.arange(n, dtype=np.float32),
        names=[f"clip{i}" for i in range(n)],
    )


# ------------------------------------------------------------------------------------------------ the contract


def test_orbit_round_trip_is_memory_mapped(tmp_path):
    data = orbit_data()
    data.save(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["count"], manifest["frames"], manifest["height"]) == ("orbit", 4, 3, 8)
    assert manifest["source"] == {"generator": "test", "seed": 0} and manifest["svd3d_version"]
    back = OrbitData.load(tmp_path / "ds")
    assert isinstance(back.frames, np.memmap) and not back.frames.flags.writeable
    for name, value in data.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), value)
    assert back.names == data.names and len(back) == 4 and back.shape == (4, 3, 8, 8)
    assert not isinstance(OrbitData.load(tmp_path / "ds", mmap=False).frames, np.memmap)
    assert isinstance(load_dataset(tmp_path / "ds"), OrbitData)


def test_clip_round_trip_and_masks_are_optional(tmp_path):
    clip_data().save(tmp_path / "clips")
    back = load_dataset(tmp_path / "clips")
    assert isinstance(back, ClipData) and back.fps.dtype == np.float32 and back.motion.tolist() == [0, 1, 2]
    replace(orbit_data(), masks=None).save(tmp_path / "nomask")
    assert OrbitData.load(tmp_path / "nomask").masks is None


def test_save_replaces_an_earlier_dataset_but_nothing_else(tmp_path):
    orbit_data(n=4).save(tmp_path / "ds")
    orbit_data(n=2).save(tmp_path / "ds")
    assert len(OrbitData.load(tmp_path / "ds")) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SVD3DError, match="svd3d did not write"):
        orbit_data().save(tmp_path / "other")
    (tmp_path / "stray").mkdir()
    np.save(tmp_path / "stray" / "frames.npy", np.zeros(3))
    with pytest.raises(SVD3DError, match=r"svd3d did not write \(frames\.npy\)"):
        orbit_data().save(tmp_path / "stray")
    assert not list(tmp_path.glob(".*"))  # no staging folders or locks left behind


def _edit_manifest(folder: Path, **changes):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_load_checks_the_manifest_against_the_arrays(tmp_path):
    folder = tmp_path / "ds1"  # a dataset edited by hand is the user's: svd3d never replaces it
    orbit_data().save(folder)
    _edit_manifest(folder, frames=5)
    with pytest.raises(SVD3DError, match=r"frames\.npy is \(4, 3, 8, 8, 3\) uint8 but its manifest says"):
        OrbitData.load(folder)
    folder = tmp_path / "ds2"
    orbit_data().save(folder)
    _edit_manifest(folder, count=3)
    with pytest.raises(SVD3DError, match="count is 3 but names has 4"):
        OrbitData.load(folder)
    folder = tmp_path / "ds3"
    orbit_data().save(folder)
    (folder / "azimuths.npy").unlink()
    with pytest.raises(SVD3DError, match=r"missing azimuths\.npy"):
        OrbitData.load(folder)
    folder = tmp_path / "ds4"
    orbit_data().save(folder)
    np.save(folder / "elevations.npy", np.zeros((4, 3), np.float64))
    with pytest.raises(SVD3DError, match=r"elevations\.npy is \(4, 3\) float64"):
        OrbitData.load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(SVD3DError, match="not a valid dataset manifest"):
        OrbitData.load(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(SVD3DError, match="manifest.json is missing"):
        OrbitData.load(folder)
    with pytest.raises(SVD3DError, match="does not exist"):
        OrbitData.load(tmp_path / "nowhere")
    clip_data().save(tmp_path / "clips")
    with pytest.raises(SVD3DError, match="holds a 'clip' dataset.*ClipData.load"):
        OrbitData.load(tmp_path / "clips")


def test_constructors_check_shapes_and_names():
    data = orbit_data()
    with pytest.raises(SVD3DError, match="4 samples but 3 names"):
        replace(data, names=data.names[:3])
    with pytest.raises(SVD3DError, match=r"frames must be an \(N, T, H, W, 3\) uint8"):
        replace(data, frames=data.frames.astype(np.float32))
    with pytest.raises(SVD3DError, match=r"azimuths has shape \(4, 2\)"):
        replace(data, azimuths=data.azimuths[:, :2])
    with pytest.raises(SVD3DError, match="masks must be a uint8"):
        replace(data, masks=data.masks.astype(np.float32))
    assert replace(data, elevations=data.elevations.astype(np.float64)).elevations.dtype == np.float32


def test_subset_and_split_keep_objects_whole(tmp_path):
    data = orbit_data(n=8, objects=["a", "a", "b", "b", "c", "c", "d", "d"])
    train, held = data.split(2, seed=3)
    assert len(train) == len(held) == 4
    assert not {n.split("#")[0] for n in train.names} & {n.split("#")[0] for n in held.names}
    again, _ = data.split(2, seed=3)
    assert again.names == train.names
    np.testing.assert_array_equal(held.frames, data.frames[[data.names.index(n) for n in held.names]])
    everything, none = data.split(0)
    assert len(everything) == 8 and len(none) == 0
    for bad in (4, -1, 1.5):
        with pytest.raises(SVD3DError, match="held_out must be a number of objects from 0 to 3"):
            data.split(bad)
    data.save(tmp_path / "ds")
    mapped = OrbitData.load(tmp_path / "ds")
    assert isinstance(mapped.subset(range(2, 6)).frames, np.memmap)  # a contiguous range stays on disk
    assert mapped.subset([5, 1]).names == [data.names[5], data.names[1]]
    assert len(mapped.subset(np.arange(8) % 2 == 0)) == 4
    with pytest.raises(SVD3DError, match="subset index 9 is out of range"):
        data.subset([0, 9])


# ------------------------------------------------------------------------------------------------ procedural


def test_random_object_is_seeded():
    a, b = (random_object(np.random.default_rng([7, 0])) for _ in range(2))
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.visual.face_colors, b.visual.face_colors)
    c = random_object(np.random.default_rng([7, 1]))
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)
    for mesh in (a, c):
        assert mesh.visual.kind == "face"
        assert np.isclose(np.linalg.norm(mesh.vertices, axis=1).max(), 0.5)  # load_mesh(fit_to="sphere")
        assert np.allclose(mesh.bounds.mean(axis=0), 0, atol=1e-9)
        assert len(np.unique(mesh.visual.face_colors[:, :3], axis=0)) >= 2  # never one plain colour


@pytest.fixture(scope="module")
def procedural():
    return procedural_orbit_dataset(6, settings=RenderOrbitSettings(size=64, frames=21), seed=11)


def test_procedural_objects_fill_a_sensible_part_of_every_view(procedural):
    assert procedural.frames.shape == (12, 21, 64, 64, 3) and procedural.masks.shape == (12, 21, 64, 64)
    coverage = (procedural.masks >= 128).mean(axis=(2, 3))  # (N, T)
    assert coverage.min() > 0.05 and coverage.max() < 0.8, coverage.round(3)
    white = (procedural.frames == 255).all(axis=-1)
    assert (white[procedural.masks == 0]).all()  # composited on white
    moving = np.abs(np.diff(procedural.frames.astype(int), axis=1)).mean(axis=(2, 3, 4))
    assert moving.min() > 0.5  # every step of every orbit shows the object turn
    assert procedural.names[:2] == ["proc-000000#static", "proc-000000#dynamic"]


def test_orbits_start_at_the_input_view_and_go_round(procedural):
    az, elev = procedural.azimuths, procedural.elevations
    assert (az[:, 0] == 0).all() and (np.diff(az, axis=1) > 0).all()
    spacing = 360 / 21
    assert np.all(np.abs(az[:, -1] - (360 - spacing)) < 0.5 * spacing)  # spans the whole circle
    static, dynamic = elev[0::2], elev[1::2]
    assert (static == static[:, :1]).all() and ((static >= -5) & (static <= 30)).all()
    assert (dynamic.std(axis=1) > 0.5).all() and ((dynamic > -16) & (dynamic < 41)).all()


def test_procedural_dataset_is_deterministic():
    settings = RenderOrbitSettings(size=24, frames=4, orbits=("dynamic",))
    a = procedural_orbit_dataset(2, settings=settings, seed=5)
    b = procedural_orbit_dataset(2, settings=settings, seed=5)
    c = procedural_orbit_dataset(2, settings=settings, seed=6)
    for name in ("frames", "masks", "elevations", "azimuths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.elevations, c.elevations)


def test_start_azimuth_turns_the_mesh_so_frame_0_is_that_view():
    mesh = random_object(np.random.default_rng(3))
    settings = RenderOrbitSettings(size=32, frames=4, orbits=("static",)).check()
    out = render_object_orbits(mesh, np.random.default_rng(9), settings)
    start, elevation = out["start_azimuth"], float(out["elevations"][0, 0])
    direct = render_views(mesh, [elevation, elevation], [start, start + 90], 32).rgba[..., :3]
    assert np.abs(direct.astype(int) - out["frames"][0, [0, 1]].astype(int)).mean() < 1.0


# ------------------------------------------------------------------------------------------------ mesh folders


@pytest.fixture
def mesh_folder(tmp_path) -> Path:
    folder = tmp_path / "meshes"
    (folder / "sub").mkdir(parents=True)
    box = trimesh.creation.box(extents=(0.8, 0.5, 0.3))
    box.visual.face_colors = (200, 40, 40, 255)
    box.export(folder / "box.glb")
    trimesh.creation.icosphere(subdivisions=2, radius=0.4).export(folder / "sub" / "ball.ply")
    (folder / "broken.obj").write_text("this is not an obj file\nv 1 2\nf 9 9 9\n")
    (folder / "readme.txt").write_text("not a mesh")
    return folder


def test_render_orbit_dataset_skips_and_lists_bad_meshes(mesh_folder, tmp_path):
    data = render_orbit_dataset(mesh_folder, tmp_path / "ds", settings=RenderOrbitSettings(size=24, frames=5), seed=1)
    assert data.names == ["box#static", "box#dynamic", "sub/ball#static", "sub/ball#dynamic"]
    assert data.frames.shape == (4, 5, 24, 24, 3) and (data.azimuths[:, 0] == 0).all()
    red = data.frames[0][data.masks[0] == 255]
    assert (red[:, 0].astype(int) - red[:, 1] > 60).mean() > 0.9  # the box's face colours survive
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [Path(s["path"]).name for s in manifest["source"]["skipped"]] == ["broken.obj"]
    assert manifest["source"]["settings"]["frames"] == 5 and manifest["source"]["seed"] == 1
    static = RenderOrbitSettings(size=24, frames=5, orbits=("static",))
    again = render_orbit_dataset([mesh_folder / "box.glb"], None, settings=static, seed=1)
    assert again.names == ["box#static"]


def test_mesh_dataset_resumes_and_shards_to_the_same_bytes(mesh_folder, tmp_path):
    """Rank 0 of 2 renders its meshes and stops (as a killed or sharded build does); the full run renders only the
    rest, and the dataset is byte for byte the one-shot build's. Two worker processes give the same bytes too."""
    settings, folder = RenderOrbitSettings(size=16, frames=3), tmp_path / "shared"
    one = render_orbit_dataset(mesh_folder, tmp_path / "one", settings=settings, seed=2)
    assert not (tmp_path / ".one.svd3d-parts").exists()  # the parts are gone once the dataset is assembled

    half = render_orbit_dataset(mesh_folder, folder, settings=settings, seed=2, rank=Rank(0, 2, launched=True))
    parts = tmp_path / ".shared.svd3d-parts"
    assert half is None and not folder.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["000000.npz", "000002.npz"]  # meshes 0 and 2 of 3
    calls = []
    real = meshes_module.render_part
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(meshes_module, "render_part", lambda *job: calls.append(job[1]) or real(*job))
        rest = render_orbit_dataset(mesh_folder, folder, settings=settings, seed=2)
    assert calls == [1] and not parts.exists()  # rank 0's parts reused, only mesh 1 rendered; parts removed
    for key in ("frames", "masks", "elevations", "azimuths"):
        assert np.array_equal(getattr(rest, key), getattr(one, key)), key
    assert rest.names == one.names and rest.source["skipped"] == one.source["skipped"]

    pooled = render_orbit_dataset(mesh_folder, tmp_path / "pooled", settings=settings, seed=2, workers=2)
    assert all(np.array_equal(getattr(pooled, k), getattr(one, k)) for k in ("frames", "masks", "azimuths"))


def test_svd3d_data_meshes_under_torchrun(mesh_folder, tmp_path):
    """`torchrun --nproc-per-node 2 -m svd3d data meshes`: each process renders its share, the last assembles,
    and the dataset's arrays are those of one process."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    args = ["-m", "svd3d", "-q", "data", "meshes", str(mesh_folder), "--size", "16", "--frames", "3"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    for cmd, out in (([sys.executable, *args], "one"), ([*launch, *args], "two")):
        done = subprocess.run([*cmd, "-o", str(tmp_path / out)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    for name in ("frames", "masks", "elevations", "azimuths"):
        assert (tmp_path / "one" / f"{name}.npy").read_bytes() == (tmp_path / "two" / f"{name}.npy").read_bytes()
    assert not list(tmp_path.glob(".*svd3d-parts"))


def test_stale_parts_are_rendered_again(mesh_folder, tmp_path):
    """A part from other settings (or an edited mesh) is not reused."""
    out, parts = tmp_path / "ds", tmp_path / ".ds.svd3d-parts"
    render_orbit_dataset(mesh_folder, out, settings=RenderOrbitSettings(size=16, frames=3), seed=0,
                         rank=Rank(0, 3, launched=True))  # fmt: skip
    assert (parts / "000000.npz").is_file()
    data = render_orbit_dataset(mesh_folder, out, settings=RenderOrbitSettings(size=24, frames=3), seed=0)
    assert data.frames.shape[2] == 24  # the 16 px part was stale


def test_render_orbit_dataset_errors(mesh_folder, tmp_path):
    with pytest.raises(SVD3DError, match="none of the 1 mesh files could be loaded"):
        render_orbit_dataset([mesh_folder / "broken.obj"], None, settings=RenderOrbitSettings(size=16, frames=3))
    with pytest.raises(SVD3DError, match="mesh folder .* does not exist"):
        render_orbit_dataset(tmp_path / "nowhere", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SVD3DError, match="no mesh files in"):
        render_orbit_dataset(tmp_path / "empty", None)
    with pytest.raises(SVD3DError, match="mesh file .*gone.glb does not exist"):
        render_orbit_dataset([tmp_path / "gone.glb"], None)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"count": 0}, r"count must be a whole number >= 1 \(objects\), got 0"),
        ({"frames": 1}, "frames must be a whole number >= 2"),
        ({"size": 4}, "size must be a whole number >= 8"),
        ({"orbits": ("static", "spiral")}, "orbits must be distinct entries"),
        ({"orbits": ()}, "orbits must be distinct entries"),
        ({"elevation_range": (30, -5)}, "elevation_range must satisfy"),
        ({"elevation_range": (0, 89)}, "elevation_range must satisfy"),
        ({"elevation_range": 5}, "elevation_range must be two numbers"),
        ({"supersample": 0}, "supersample must be a whole number from 1 to 8"),
    ],
)
def test_procedural_bad_options(option, message):
    count = option.pop("count", 1)
    with pytest.raises(SVD3DError, match=message):
        procedural_orbit_dataset(count, settings=RenderOrbitSettings(**option))


# ------------------------------------------------------------------------------------------------ clips


def test_synthetic_clips_shapes_and_determinism():
    a = synthetic_clips(6, size=32, frames=8, seed=2)
    assert a.frames.shape == (6, 8, 32, 32, 3) and a.frames.dtype == np.uint8
    assert set(a.fps.tolist()) <= set(FPS_CHOICES) and ((a.motion >= 0) & (a.motion <= 255)).all()
    assert a.names[0] == "synth-000000" and a.source["seed"] == 2
    b = synthetic_clips(6, size=32, frames=8, seed=2)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, synthetic_clips(6, size=32, frames=8, seed=3).frames)
    assert (np.abs(np.diff(a.frames.astype(int), axis=1)).mean(axis=(1, 2, 3, 4)) > 0).sum() >= 5  # they move


def test_motion_bucket_grows_with_speed():
    scene = random_scene(np.random.default_rng(4), 48)
    buckets = [motion_bucket(render_scene(replace(scene, speed=v), 14, 8)) for v in (0.0, 0.5, 1.0, 2.0)]
    assert buckets[0] == 0 and buckets[1] < buckets[2] < buckets[3], buckets
    # the same motion sampled at a higher frame rate moves less per frame
    assert motion_bucket(render_scene(scene, 14, 12)) < motion_bucket(render_scene(scene, 14, 6))
    with pytest.raises(SVD3DError, match="needs a clip of"):
        motion_bucket(np.zeros((1, 8, 8, 3), np.uint8))


def test_synthetic_clips_bad_options():
    for options, message in [({"count": 0}, "count must be"), ({"count": 2, "frames": 1}, "frames must be")]:
        with pytest.raises(SVD3DError, match=message):
            synthetic_clips(**options)


def _bands(t: int, height=48, width=80) -> np.ndarray:
    """(T, H, W, 3): red and blue side bands outside the centre square, moving green / black stripes inside."""
    clip = np.zeros((t, height, width, 3), np.uint8)
    side = (width - height) // 2
    clip[:, :, :side] = (255, 0, 0)
    clip[:, :, width - side :] = (0, 0, 255)
    for i in range(t):
        x = np.arange(height)
        centre = np.where(((x + 3 * i) // 6 % 2 == 0)[None, :, None], (0, 200, 0), (0, 0, 0))
        clip[i, :, side : side + height] = np.broadcast_to(centre, (height, height, 3))
    return clip


@pytest.fixture
def video_folder(tmp_path) -> Path:
    import imageio.v3 as iio

    from svd3d.media import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(_bands(20), folder / "a.mp4", fps=10)
    iio.imwrite(folder / "b.gif", _bands(16), duration=100, loop=0)  # 10 fps (GIF counts centiseconds)
    (folder / "c").mkdir()
    for i, frame in enumerate(_bands(15)):
        Image.fromarray(frame).save(folder / "c" / f"frame_{i}.png")  # unpadded numbers sort numerically
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_load_video_folder(video_folder):
    data = load_video_folder(video_folder, size=16, frames=7)
    assert data.names == ["a.mp4#0000", "a.mp4#0007", "b.gif#0000", "b.gif#0007", "c#0000", "c#0007"]
    assert data.frames.shape == (6, 7, 16, 16, 3)
    np.testing.assert_allclose(data.fps, [10, 10, 10, 10, DEFAULT_FOLDER_FPS, DEFAULT_FOLDER_FPS])
    frames = data.frames.astype(int)
    assert (frames[..., 0] < 60).mean() > 0.95 and (frames[..., 2] < 60).mean() > 0.95  # the side bands are cut off
    assert frames[..., 1].std() > 40  # the stripes survive the area resize
    assert (data.motion > 0).all()
    np.testing.assert_array_equal(data.frames[4:6], data.frames[2:4])  # the PNG frames in numeric order = the GIF
    overlapping = load_video_folder(video_folder, size=16, frames=7, stride=4)
    assert [n for n in overlapping.names if n.startswith("c#")] == ["c#0000", "c#0004", "c#0008"]


def test_load_video_folder_errors(video_folder, tmp_path):
    with pytest.raises(SVD3DError, match="clip .*b.gif has 16 frames, fewer than frames=17"):
        load_video_folder(video_folder, frames=17)
    with pytest.raises(SVD3DError, match="stride must be"):
        load_video_folder(video_folder, stride=0)
    with pytest.raises(SVD3DError, match="size must be"):
        load_video_folder(video_folder, size=4)
    (video_folder / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video" * 10)
    with pytest.raises(SVD3DError, match=r"cannot read video .*broken\.mp4"):
        load_video_folder(video_folder, frames=7)
    with pytest.raises(SVD3DError, match="video folder .* does not exist"):
        load_video_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SVD3DError, match="no clips in"):
        load_video_folder(tmp_path / "empty")
    (tmp_path / "loose").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "loose" / "000.png")
    with pytest.raises(SVD3DError, match="loose frames .*own subfolder"):
        load_video_folder(tmp_path / "loose")
    (tmp_path / "unnumbered" / "clip").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "unnumbered" / "clip" / "first.png")
    with pytest.raises(SVD3DError, match="has no number in its name"):
        load_video_folder(tmp_path / "unnumbered")


# ------------------------------------------------------------------------------------------------ svd3d data


def _data(*args) -> object:
    return CliRunner().invoke(main, ["-q", "data", *map(str, args)], catch_exceptions=False)


def test_svd3d_data_builds_every_kind(tmp_path, mesh_folder, video_folder):
    for count, samples in ((2, 4), (1, 2)):  # the second replaces the first
        result = _data("procedural", "--count", count, "--size", 16, "--frames", 3, "-o", tmp_path / "proc")
        assert result.exit_code == 0, result.output
        assert len(OrbitData.load(tmp_path / "proc")) == samples
    assert _data("clips", "--count", 3, "--size", 16, "--frames", 4, "-o", tmp_path / "clips").exit_code == 0
    assert len(ClipData.load(tmp_path / "clips")) == 3
    assert _data("meshes", mesh_folder, "--size", 16, "--frames", 3, "-o", tmp_path / "mesh_ds").exit_code == 0
    assert OrbitData.load(tmp_path / "mesh_ds").names == ["box#static", "box#dynamic", "sub/ball#static",
                                                          "sub/ball#dynamic"]  # fmt: skip
    result = _data("videos", video_folder, "--size", 16, "--frames", 7, "-o", tmp_path / "video_ds")
    assert result.exit_code == 0, result.output
    assert ClipData.load(tmp_path / "video_ds").source["generator"] == "svd3d.training.videos.load_video_folder"


def test_svd3d_data_errors(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "photo.jpg").write_bytes(b"")
    for args, message in [
        (("procedural", "--count", 1, "-o", tmp_path / "busy"), "svd3d did not write"),
        (("cats", "-o", tmp_path / "x"), "invalid value for '{procedural|meshes|clips|videos}'"),
        (("meshes", "-o", tmp_path / "x"), "needs a source folder"),
        (("procedural", "-o", tmp_path / "x"), "needs --count"),
        (("clips", tmp_path, "--count", 1, "-o", tmp_path / "x"), "drop the source argument"),
        (("videos", tmp_path, "--count", 1, "-o", tmp_path / "x"), "--count is for procedural / clips"),
    ]:
        result = _data(*args)
        assert result.exit_code == 2 and message in result.output.lower(), (args, result.output)
    assert not (tmp_path / "x").exists()
