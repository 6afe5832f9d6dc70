"""svd3d curate: cuts found within a frame on synthetic footage with known cuts, static / chaotic / short clips
dropped, the manifest, `svd3d data videos` on a curated folder, and the bad-input and output contracts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2  # svd3d[curate], part of svd3d[dev]
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from svd3d import media
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.training import curate
from svd3d.training.data import ClipData, object_name

cv2.setNumThreads(1)  # the CPU is shared with the other tests' processes

H, W = 128, 192  # the shorter side is curate.ANALYSIS_SIDE: motion is measured in these very pixels
FPS = 24.0


def texture(seed: int) -> np.ndarray:
    """(3H, 3W, 3) uint8: smooth random blobs in a palette of four colours of their own."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (4, 3)).astype(np.float32)
    coarse = rng.random((3 * H // 8 + 3, 3 * W // 8 + 3)).astype(np.float32)
    x = np.clip(cv2.resize(coarse, (3 * W + 24, 3 * H + 24), interpolation=cv2.INTER_CUBIC)[: 3 * H, : 3 * W], 0, 0.999)
    x = x * (len(palette) - 1)
    i, f = x.astype(int), (x - x.astype(int))[..., None]
    return (palette[i] * (1 - f) + palette[np.minimum(i + 1, 3)] * f).astype(np.uint8)


def shot(seed: int, frames: int, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    """(frames, H, W, 3) uint8: a window on `texture(seed)` moving (dx, dy) px/frame or zooming in by `zoom` a
    frame, with a little sensor noise."""
    tex, rng = texture(seed), np.random.default_rng(seed)
    out = []
    for i in range(frames):
        s = zoom**i
        m = np.float32([[s, 0, W / 2 - s * (1.5 * W + i * dx)], [0, s, H / 2 - s * (1.5 * H + i * dy)]])
        frame = cv2.warpAffine(tex, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(frame + rng.normal(0, 1.0, frame.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def fade_through_black(a: np.ndarray, b: np.ndarray, k: int) -> None:
    """Fade `a`'s last k frames out to black and `b`'s first k in from black (in place)."""
    ramp = np.linspace(0, 1, k)[:, None, None, None]
    a[-k:] = (a[-k:] * ramp[::-1]).astype(np.uint8)
    b[:k] = (b[:k] * ramp).astype(np.uint8)


# the footage: (kind, frames) of each shot; hard cuts at 30, 54, 74 and 128, a fade through black at 104
SHOTS = [("pan 2 px/frame", 30), ("static", 24), ("noise", 20), ("zoom", 30), ("pan 1.4 px/frame", 24),
         ("short", 8)]  # fmt: skip
CUTS = [30, 54, 74, 128]
FADE = 104  # the first frame of the shot after the fade: black, as is the frame before it


def footage() -> np.ndarray:
    rng = np.random.default_rng(3)
    shots = [
        shot(1, 30, dx=2.0),
        shot(2, 24),
        rng.integers(0, 256, (20, H, W, 3), dtype=np.uint8),
        shot(4, 30, zoom=1.02),
        shot(5, 24, dx=1.0, dy=1.0),
        shot(6, 8, dx=3.0),
    ]
    fade_through_black(shots[3], shots[4], 6)
    return np.concatenate(shots)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """walk.mp4 (the footage above) and pan/ (a folder of 16 PNG frames panning 3 px/frame)."""
    folder = tmp_path_factory.mktemp("curate") / "videos"
    folder.mkdir()
    media.write_video(footage(), folder / "walk.mp4", fps=FPS)
    (folder / "pan").mkdir()
    for i, frame in enumerate(shot(7, 16, dx=-3.0)):
        Image.fromarray(frame).save(folder / "pan" / f"{i:03d}.png")
    return folder


def invoke(*args):
    return CliRunner().invoke(main, ["-q", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def curated(videos) -> tuple[Path, object]:
    out = videos.parent / "clips"
    result = invoke("curate", videos, "-o", out)
    assert result.exit_code == 0, result.output
    return out, result


def _manifest(out: Path) -> dict:
    return json.loads((out / "curation.json").read_text())


def test_cuts_and_the_fade_are_found_within_a_frame(curated):
    out, _ = curated
    walk = next(v for v in _manifest(out)["videos"] if v["source"] == "walk.mp4")
    assert len(walk["cuts"]) == len(CUTS)
    assert all(abs(found - true) <= 1 for found, true in zip(walk["cuts"], CUTS, strict=True)), walk["cuts"]
    (gap,) = walk["gaps"]  # the fade: its black frames and the dimmed ones around them, in no clip
    assert gap[0] <= FADE - 1 and gap[1] >= FADE + 1 and gap[1] - gap[0] <= 12, gap


def test_clips_are_judged_by_their_motion(curated):
    out, _ = curated
    clips = [c for c in _manifest(out)["clips"] if c["source"] == "walk.mp4"]
    assert [c["reason"] for c in clips] == [None, "static", "chaotic", None, None, "too_short"]
    pan, static, noise, zoom, diagonal, short = clips
    assert [(c["start_frame"], c["end_frame"]) for c in (pan, static, noise)] == [(0, 30), (30, 54), (54, 74)]
    assert zoom["start_frame"] == 74 and FADE - 8 <= zoom["end_frame"] < FADE
    assert FADE < diagonal["start_frame"] <= FADE + 8 and diagonal["end_frame"] == 128
    assert (short["start_frame"], short["end_frame"]) == (128, 136)
    assert pan["motion"] == pytest.approx(2.0, rel=0.1) and pan["chaos"] < 0.2
    assert diagonal["motion"] == pytest.approx(np.sqrt(2), rel=0.1) and diagonal["chaos"] < 0.2
    assert static["motion"] < 0.1 and noise["chaos"] > 1.0 and zoom["chaos"] < 0.5
    assert "min_motion" in static["why"] and "max_chaos" in noise["why"] and "min_frames" in short["why"]
    (folder,) = [c for c in _manifest(out)["clips"] if c["source"] == "pan"]
    assert folder["kept"] and folder["fps"] == 7.0 and folder["motion"] == pytest.approx(3.0, rel=0.1)


def test_manifest_and_clip_files(curated, videos):
    out, result = curated
    manifest = _manifest(out)
    assert manifest["settings"]["min_motion"] == curate.CurateSettings().min_motion
    assert manifest["settings"]["analysis_side"] == curate.ANALYSIS_SIDE and manifest["settings"]["flow"] == "dis"
    assert set(manifest["filters_not_run"]) == {"aesthetic", "text_overlay"}
    assert all(note.startswith("not run:") for note in manifest["filters_not_run"].values())
    summary = manifest["summary"]
    assert summary["videos"] == 2 and summary["clips"] == 7 and summary["kept"] == 4
    assert summary["dropped"] == {"too_short": 1, "static": 1, "chaotic": 1, "too_fast": 0}
    kept = [c for c in manifest["clips"] if c["kept"]]
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == sorted(["curation.json", *(c["file"] for c in kept)])
    assert [c["id"] for c in kept] == ["pan_000", "walk_000", "walk_003", "walk_004"]
    for clip in kept:  # each file holds exactly its span of the source, at the source's size and rate
        frames = list(media_frames(out / clip["file"]))
        assert len(frames) == clip["frames"] == clip["end_frame"] - clip["start_frame"]
        assert frames[0].shape == (H, W, 3) and clip["end_s"] == pytest.approx(
            clip["end_frame"] / clip["fps"], abs=1e-3
        )
    walk = [c for c in kept if c["source"] == "walk.mp4"][0]
    source = list(media_frames(videos / "walk.mp4"))[walk["start_frame"] : walk["end_frame"]]
    diff = np.abs(np.stack(list(media_frames(out / walk["file"]))).astype(int) - np.stack(source)).mean()
    assert diff < 6, diff  # the same frames, re-encoded
    assert result.output.splitlines() == [
        f"2 videos (152 frames, {summary['seconds']:.1f} s): 4 cuts, 1 fade or blank stretch "
        f"({summary['gap_frames']} frames left out) -> 7 clips",
        f"kept 4 clips ({summary['kept_frames']} frames, {summary['kept_seconds']:.1f} s); dropped 3: 1 too short, "
        "1 static, 1 chaotic",
        "not run: aesthetic and text-overlay filters (no offline model is bundled; see curation.json)",
        result.output.splitlines()[-1],
    ]
    assert result.output.splitlines()[-1].startswith(f"wrote {out}/ (4 clips + curation.json) in ")


def media_frames(path: Path):
    from svd3d.training.videos import iter_frames

    return iter_frames(path)


def test_data_videos_reads_the_kept_clips_only(curated, tmp_path):
    out, _ = curated
    kept = [c for c in _manifest(out)["clips"] if c["kept"]]
    result = invoke("data", "videos", out, "--size", 16, "--frames", 14, "-o", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    data = ClipData.load(tmp_path / "ds")
    assert {object_name(n) for n in data.names} == {"walk.mp4", "pan"}  # a source's clips are one object
    for name in data.names:  # every window lies inside a kept clip's span of its source
        source, first = name.split("#")
        assert any(c["source"] == source and c["start_frame"] <= int(first) <= c["end_frame"] - 14 for c in kept)
    assert len(data) == sum(c["frames"] // 14 for c in kept)
    rates = dict(zip(data.names, data.fps, strict=True))
    assert rates["pan#0000"] == 7.0 and rates["walk.mp4#0000"] == FPS
    assert data.source["curation"]["settings"]["flow"] == "dis" and data.source["skipped"] == []

    longer = invoke("data", "videos", out, "--size", 16, "--frames", 20, "-o", tmp_path / "ds20")
    assert longer.exit_code == 0, longer.output
    short = [c for c in kept if c["frames"] < 20]
    assert short and all(f"skipped {out / c['file']}: {c['frames']} frames" in longer.output for c in short)


def test_data_videos_refuses_a_damaged_curated_folder(curated, tmp_path):
    out, _ = curated
    copy = tmp_path / "clips"
    copy.mkdir()
    for p in out.iterdir():
        if not p.name.startswith("."):
            (copy / p.name).write_bytes(p.read_bytes())
    (copy / "walk_003.mp4").unlink()
    result = invoke("data", "videos", copy, "--frames", 14, "-o", tmp_path / "ds")
    assert result.exit_code == 2 and "kept clip walk_003.mp4 listed in" in result.output
    (copy / "curation.json").write_text("{")
    result = invoke("data", "videos", copy, "--frames", 14, "-o", tmp_path / "ds")
    assert result.exit_code == 2 and "not a valid curation manifest" in result.output
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------------------------ pure parts


def test_find_cuts_needs_a_score_that_stands_out():
    steady = np.full(40, 0.35, np.float32)  # a fast pan changes the histograms a lot, and steadily
    steady[0] = np.nan
    assert curate.find_cuts(steady, 0.3) == []
    spiky = np.full(40, 0.05, np.float32)
    spiky[[0, 20]] = [np.nan, 0.5]
    spiky[10] = 0.29  # under the threshold
    assert curate.find_cuts(spiky, 0.3) == [20]
    assert curate.find_cuts(spiky, 0.6) == []


def test_fades_and_spans():
    contrast = np.array([50, 50, 50, 40, 25, 10, 0, 0, 12, 30, 45, 50, 50, 51], np.float32)
    blank = contrast < curate.BLANK_STD
    fading = curate.fades(contrast, blank)
    assert np.flatnonzero(fading).tolist() == [3, 4, 5, 8, 9, 10]
    gap = blank | fading
    assert curate.mask_runs(gap) == [(3, 11)]
    assert curate.clip_spans(gap, [2, 12]) == [(0, 2), (2, 3), (11, 12), (12, 14)]
    hard = np.array([50, 50, 0, 0, 50, 50], np.float32)  # a hard cut to black and back: nothing fades
    assert not curate.fades(hard, hard < curate.BLANK_STD).any()


def test_clip_ids_stay_apart():
    assert curate.clip_ids(["walk.mp4", "walk.webm", "run.mp4", "shot#1"]) == {
        "walk.mp4": "walk_mp4", "walk.webm": "walk_webm", "run.mp4": "run", "shot#1": "shot_1"}  # fmt: skip


# ------------------------------------------------------------------------------------------------ contracts


@pytest.fixture
def small_videos(tmp_path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    media.write_video(np.concatenate([shot(1, 16, dx=2.0), shot(4, 16, dx=-1.5)]), folder / "a.mp4", fps=FPS)
    return folder


def _leftovers(parent: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--min-motion", -1), "--min-motion must be a number >= 0, got -1.0"),
        (("--min-motion", 2, "--max-motion", 1), "--max-motion (1) must be above --min-motion (2)"),
        (("--max-chaos", "nan"), "--max-chaos must be a number >= 0, got nan"),
        (("--cut-threshold", 1.5), "--cut-threshold must be a number from 0 to 1, got 1.5"),
        (("--cut-threshold", 0), "--cut-threshold must be above 0"),
        (("--min-frames", 2), "--min-frames must be a whole number >= 3"),
        (("--flow", "lucas"), "invalid value for '--flow'"),
    ],
)
def test_bad_thresholds(small_videos, tmp_path, args, needle):
    result = invoke("curate", small_videos, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2 and needle.lower() in result.output.lower(), result.output
    assert _leftovers(tmp_path, {"videos"}) == []


def test_bad_inputs(tmp_path, small_videos):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "b.mp4").write_bytes(b"\x00\x01 not a video" * 20)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("the user's")
    for args, needle in [
        ((tmp_path / "nowhere", "-o", tmp_path / "out"), "video folder"),
        ((tmp_path / "empty", "-o", tmp_path / "out"), "no clips in"),
        ((tmp_path / "broken", "-o", tmp_path / "out"), "cannot read video"),
        ((small_videos, "-o", tmp_path / "busy"), "svd3d did not write"),
    ]:
        result = invoke("curate", *args)
        line = result.output.strip().splitlines()[-1]
        assert result.exit_code == 2 and line.startswith("error: ") and needle in line, result.output
        assert str(args[0].name) in line or "busy" in line
    assert _leftovers(tmp_path, {"videos", "empty", "broken", "busy"}) == []
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["mine.txt"]


def test_missing_opencv_names_the_extra(small_videos, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    result = invoke("curate", small_videos, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "pip install 'svd3d[curate]'" in result.output
    assert not (tmp_path / "out").exists()


def test_rerun_replaces_and_an_interrupted_run_leaves_the_earlier_output(small_videos, tmp_path, monkeypatch):
    out = tmp_path / "clips"
    assert invoke("curate", small_videos, "-o", out).exit_code == 0
    assert invoke("curate", small_videos, "-o", out, "--min-frames", 20).exit_code == 0  # replaces its own output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _manifest(out)["summary"]["dropped"]["too_short"] == 2

    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C while the second clip is being written
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return writer(*args, **kwargs)

    writer = media.mp4_writer
    monkeypatch.setattr(media, "mp4_writer", interrupted)
    result = invoke("curate", small_videos, "-o", out)
    assert result.exit_code == 130 and "interrupted" in result.output and len(calls) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier output, as it was
    assert _leftovers(tmp_path, {"videos", "clips"}) == []  # no partial folder, no lock


def test_python_api(small_videos, tmp_path):
    import svd3d

    result = svd3d.curate_videos(small_videos, tmp_path / "clips", min_motion=1.8, progress=False)
    assert [(c["id"], c["reason"]) for c in result.clips] == [("a_000", None), ("a_001", "static")]
    assert result.kept == result.clips[:1] and result.summary["kept"] == 1
    with pytest.raises(SVD3DError, match="--max-chaos must be"):
        svd3d.curate_videos(small_videos, tmp_path / "other", max_chaos=-0.5)


def test_farneback_flow_and_odd_frame_sizes(tmp_path):
    import svd3d

    folder = tmp_path / "videos" / "odd"  # frames of 131 x 195 pixels: written as 130 x 194 (H.264 needs even sides)
    folder.mkdir(parents=True)
    frames = shot(3, 20, dx=2.0)
    for i, frame in enumerate(frames):
        Image.fromarray(cv2.resize(frame, (195, 131), interpolation=cv2.INTER_AREA)).save(folder / f"f{i}.png")
    result = svd3d.curate_videos(folder.parent, tmp_path / "clips", flow="farneback", progress=False)
    (clip,) = result.clips
    assert clip["kept"] and clip["motion"] == pytest.approx(2.0, rel=0.25)  # 131 px short side: 2 * 128 / 131
    assert next(iter(media_frames(tmp_path / "clips" / clip["file"]))).shape == (130, 194, 3)
