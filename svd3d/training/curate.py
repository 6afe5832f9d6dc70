"""Curating raw videos into training clips (`svd3d curate`): split each video at its cuts, measure each clip's motion
with dense optical flow, keep the clips whose motion is steady and large enough to learn from, and write them with
a manifest, curation.json, that `svd3d data videos` reads (svd3d.training.videos).

Every measurement is made on analysis frames: the video's frames area-resized so that their shorter side is
ANALYSIS_SIDE (128) pixels, the side of the square that training crops from them. Motion is therefore in pixels per
frame at that size, whatever the video's resolution.

- Cuts. For each pair of consecutive frames, the cut score is the total-variation distance between their colour
  histograms (8 x 8 x 8 RGB bins), averaged over the four quarters of the frame: 0 for the same colours, 1 for
  none in common. A pair is a cut when its score reaches `cut_threshold` and is CUT_CONTRAST (3) times the median
  score of the CUT_WINDOW (4) pairs on either side: within a shot, motion changes the histograms a little from
  frame to frame and steadily, a cut changes them at once. Each frame's brightness is scaled to one mean first, so
  flicker and exposure changes are not cuts. Blank frames (grey standard deviation under BLANK_STD: black or white
  screens, the bottom of a fade) and the frames fading into and out of them (contrast changing by over FADE_STEP
  a frame towards the blank) separate clips too and belong to none.
- Motion: the mean optical-flow magnitude, pixels per frame, over the textured pixels (local gradient at least
  TEXTURE_MIN grey levels per pixel) of every pair of frames in the clip: in flat regions no flow method can see
  motion, and counting them would call a panning sky static.
- Chaos: how erratically that motion changes from one frame to the next, sum |f_t - f_(t-1)| over
  sum (|f_t| + |f_(t-1)|) / 2 on the textured pixels, pooled over the clip (f_t: the flow from frame t-1 to t, at
  each pixel): about 0 for steady motion (pans, zooms, objects moving smoothly), about 1.3 for flow that is random
  from frame to frame (sensor noise, flicker, a shaking camera), and high too where the motion is too fast for the
  flow to follow.

A clip is dropped when it is too short (`min_frames`), static (motion under `min_motion`), chaotic (chaos over
`max_chaos`) or too fast (motion over `max_motion`), checked in that order; the first that applies is its reason.
Aesthetic and text-overlay filters need models that svd3d neither bundles nor downloads, so they are not run; the
manifest says so (NOT_RUN).

Flow: OpenCV's DIS (dense inverse search, medium preset) by default, or Farnebäck's polynomial-expansion flow
(`flow="farneback"`). On synthetic pans of 0.5 to 16 px/frame DIS reads 1.00-1.02 times the true speed, Farnebäck
0.72-0.94 (it leaves weakly textured regions still) and takes longer (benchmarks/curate_bench.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from svd3d import defaults, media, outputs
from svd3d.errors import SVD3DError
from svd3d.training.videos import CURATION, clip_fps, find_clips, iter_frames
from svd3d.version import __version__

log = logging.getLogger(__name__)

MANIFEST = CURATION  # in a curated folder: every clip, kept or dropped, and how it was judged
ANALYSIS_SIDE = 128  # pixels: the shorter side of the analysis frames (motion is in pixels per frame at this size)
HIST_BINS = 8  # per RGB channel: 512 colour bins
HIST_GRID = 2  # the histograms are compared per cell of a 2 x 2 grid
CUT_WINDOW = 4  # pairs on either side whose median score a cut must stand out from
CUT_CONTRAST = 3.0  # ... by this factor
BLANK_STD = 3.0  # grey levels: a frame this flat is blank (a black or white screen, the bottom of a fade)
FADE_STEP = 0.02  # a frame next to a blank run is fading while its contrast changes by over 2 % a frame
TEXTURE_MIN = 1.0  # grey levels per pixel, the local gradient (7 x 7 mean) where flow is measured
FlowMethod = Literal["dis", "farneback"]
REASONS = ("too_short", "static", "chaotic", "too_fast")  # in the order they are checked
NOT_RUN = {
    "aesthetic": "not run: svd3d bundles no aesthetic-score model and downloads none; clips were not judged on looks",
    "text_overlay": "not run: svd3d bundles no text-detection (OCR) model and downloads none; clips with captions, "
    "subtitles or logos were not removed",
}
INSTALL_HINT = "curation needs OpenCV: pip install 'svd3d[curate]' (or pip install opencv-python-headless)"


@dataclass(frozen=True)
class CurateSettings:
    """What `svd3d curate` keeps (the thresholds are recorded in curation.json)."""

    cut_threshold: float = defaults.CURATE_CUT_THRESHOLD  # colour-histogram distance (0..1) that makes a cut
    min_motion: float = defaults.CURATE_MIN_MOTION  # px/frame at ANALYSIS_SIDE: clips moving less are static
    max_motion: float = defaults.CURATE_MAX_MOTION  # px/frame: clips moving more are too fast
    max_chaos: float = defaults.CURATE_MAX_CHAOS  # flow incoherence: clips above it are chaotic
    min_frames: int = defaults.CURATE_MIN_FRAMES  # clips with fewer frames are too short
    flow: FlowMethod = defaults.CURATE_FLOW  # dense optical flow: dis or farneback

    def check(self) -> CurateSettings:
        """Validated copy (numbers as floats / ints), or an SVD3DError naming the bad value and its option."""

        def number(name: str, low: float, high: float | None = None) -> float:
            value = getattr(self, name)
            option = "--" + name.replace("_", "-")
            ok = not isinstance(value, bool) and isinstance(value, int | float) and np.isfinite(value)
            if not ok or value < low or (high is not None and value > high):
                bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
                raise SVD3DError(f"{option} must be a number {bound}, got {value!r}")
            return float(value)

        cut = number("cut_threshold", 0.0, 1.0)
        if cut == 0:
            raise SVD3DError("--cut-threshold must be above 0 (0 would cut between every two frames), got 0")
        low, high = number("min_motion", 0.0), number("max_motion", 0.0)
        if high <= low:
            raise SVD3DError(f"--max-motion ({high:g}) must be above --min-motion ({low:g}) px/frame")
        chaos = number("max_chaos", 0.0)
        frames = self.min_frames
        if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 3:
            raise SVD3DError(f"--min-frames must be a whole number >= 3 (chaos compares two flows), got {frames!r}")
        if self.flow not in FLOWS:
            raise SVD3DError(f"--flow must be one of {', '.join(FLOWS)}, got {self.flow!r}")
        return replace(self, cut_threshold=cut, min_motion=low, max_motion=high, max_chaos=chaos,
                       min_frames=int(frames))  # fmt: skip

    def record(self) -> dict:
        return {
            "cut_threshold": self.cut_threshold,
            "min_motion": self.min_motion,
            "max_motion": self.max_motion,
            "max_chaos": self.max_chaos,
            "min_frames": self.min_frames,
            "flow": self.flow,
            "analysis_side": ANALYSIS_SIDE,
            "motion_unit": f"pixels per frame, frames scaled to a {ANALYSIS_SIDE}-pixel shorter side",
        }


# ------------------------------------------------------------------------------------------------ frames


def require_cv2():
    """OpenCV, or an SVD3DError with the install hint."""
    try:
        import cv2
    except ImportError:
        raise SVD3DError(INSTALL_HINT) from None
    return cv2


def analysis_frame(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with min(h, w) = ANALYSIS_SIDE, area-resized, aspect ratio kept."""
    cv2 = require_cv2()
    h, w = frame.shape[:2]
    scale = ANALYSIS_SIDE / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA)


def colour_histograms(frame: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (HIST_GRID**2, HIST_BINS**3) float32: the normalised RGB histogram of each grid cell,
    the frame's brightness first scaled to a mean of 128 so that flicker and exposure changes do not move it."""
    gain = 128.0 / max(float(frame.mean()), 1.0)
    q = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.int32) * HIST_BINS // 256
    index = (q[..., 0] * HIST_BINS + q[..., 1]) * HIST_BINS + q[..., 2]  # (h, w) bin of each pixel
    rows = np.linspace(0, index.shape[0], HIST_GRID + 1).astype(int)
    cols = np.linspace(0, index.shape[1], HIST_GRID + 1).astype(int)
    cells = []
    for y0, y1 in zip(rows[:-1], rows[1:], strict=True):
        for x0, x1 in zip(cols[:-1], cols[1:], strict=True):
            cell = index[y0:y1, x0:x1]
            counts = np.bincount(cell.ravel(), minlength=HIST_BINS**3).astype(np.float32)
            cells.append(counts / max(counts.sum(), 1.0))
    return np.stack(cells)


def cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two frames' `colour_histograms`: total variation per cell, averaged; 0..1."""
    return float(0.5 * np.abs(a - b).sum(axis=1).mean())


def textured(grey: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> (h, w) bool: pixels whose local gradient (Sobel, 7 x 7 mean) is at least TEXTURE_MIN."""
    cv2 = require_cv2()
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0  # grey levels per pixel
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return cv2.blur(np.hypot(gx, gy), (7, 7)) >= TEXTURE_MIN


@functools.cache
def _dis():
    cv2 = require_cv2()
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _dis().calc(a, b, None)


def _farneback_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cv2 = require_cv2()
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)


FLOWS = {"dis": _dis_flow, "farneback": _farneback_flow}  # (h, w) uint8 grey x 2 -> (h, w, 2) float32 px/frame


# ------------------------------------------------------------------------------------------------ analysis


@dataclass
class VideoAnalysis:
    """Per-frame measurements of one video, index t for the pair of frames (t-1, t) (entry 0 is unused)."""

    source: str  # the path relative to the videos folder
    path: Path
    fps: float
    width: int
    height: int
    cut_scores: np.ndarray  # (T,) float32, colour-histogram distance of (t-1, t); NaN where either is blank
    contrast: np.ndarray  # (T,) float32, grey standard deviation of frame t
    blank: np.ndarray  # (T,) bool, frame t is blank (contrast under BLANK_STD)
    motion_sum: np.ndarray  # (T,) float64, sum of |flow| over the textured pixels of frame t-1
    textured: np.ndarray  # (T,) int64, how many pixels of frame t-1 are textured
    change_sum: np.ndarray  # (T,) float64, sum |f_t - f_(t-1)| over the textured pixels of frame t-1
    flow_sum: np.ndarray  # (T,) float64, sum (|f_t| + |f_(t-1)|) / 2 over the same pixels

    @property
    def frames(self) -> int:
        return len(self.blank)


def analyse_video(path: Path, source: str, flow: FlowMethod, *, progress: bool = True) -> VideoAnalysis:
    """Decode `path` once, frame by frame, and measure what cuts and clip scores need (VideoAnalysis): only the
    previous analysis frame and flow are held, so any length of video fits in memory."""
    cv2 = require_cv2()
    flow_fn = FLOWS[flow]
    fps = clip_fps(path)
    columns = {k: [] for k in ("cut_scores", "contrast", "blank", "motion_sum", "textured", "change_sum", "flow_sum")}
    prev_grey = prev_hist = prev_flow = prev_mask = None
    width = height = 0
    bar = tqdm(desc=f"analyse {source}", unit="frame", disable=None if progress else True, leave=False)
    for t, frame in enumerate(iter_frames(path)):
        if t == 0:
            height, width = frame.shape[:2]
        elif frame.shape[:2] != (height, width):
            raise SVD3DError(f"video {path} changes size at frame {t} ({frame.shape[1]}x{frame.shape[0]} after "
                             f"{width}x{height}); re-encode it at one size")  # fmt: skip
        small = analysis_frame(frame)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        hist = colour_histograms(small)
        contrast = float(grey.std())
        blank = contrast < BLANK_STD
        row = {"cut_scores": np.nan, "contrast": contrast, "blank": blank, "motion_sum": 0.0, "textured": 0,
               "change_sum": 0.0, "flow_sum": 0.0}  # fmt: skip
        flow_now = None
        mask = None if blank else textured(grey)  # (h, w) bool: where the flow from this frame can be measured
        if prev_grey is not None and not blank and not columns["blank"][-1]:
            row["cut_scores"] = cut_score(prev_hist, hist)
            flow_now = flow_fn(prev_grey, grey)  # (h, w, 2) from frame t-1 to t
            magnitude = np.linalg.norm(flow_now, axis=-1)
            row["motion_sum"], row["textured"] = float(magnitude[prev_mask].sum()), int(prev_mask.sum())
            if prev_flow is not None:
                change = np.linalg.norm(flow_now - prev_flow, axis=-1)
                mean = 0.5 * (magnitude + np.linalg.norm(prev_flow, axis=-1))
                row["change_sum"], row["flow_sum"] = float(change[prev_mask].sum()), float(mean[prev_mask].sum())
        for key, value in row.items():
            columns[key].append(value)
        prev_grey, prev_hist, prev_flow, prev_mask = grey, hist, flow_now, mask
        bar.update()
    bar.close()
    if not columns["blank"]:
        raise SVD3DError(f"video {path} has no frames; remove it from the folder")
    dtypes = {"cut_scores": np.float32, "contrast": np.float32, "blank": bool, "textured": np.int64}
    arrays = {k: np.asarray(v, dtype=dtypes.get(k, np.float64)) for k, v in columns.items()}
    return VideoAnalysis(source=source, path=path, fps=fps, width=width, height=height, **arrays)


def find_cuts(scores: np.ndarray, threshold: float) -> list[int]:
    """Frames t that start a new shot: scores[t] (the pair (t-1, t); NaN: not comparable) reaches `threshold` and
    is CUT_CONTRAST times the median of the valid scores of the CUT_WINDOW pairs on either side (0 when none)."""
    cuts = []
    for t in range(1, len(scores)):
        score = scores[t]
        if not np.isfinite(score) or score < threshold:
            continue
        around = np.concatenate([scores[max(1, t - CUT_WINDOW) : t], scores[t + 1 : t + 1 + CUT_WINDOW]])
        around = around[np.isfinite(around)]
        base = float(np.median(around)) if len(around) else 0.0
        if score >= CUT_CONTRAST * base:
            cuts.append(t)
    return cuts


def fades(contrast: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """(T,) bool: the frames of fades into and out of each run of blank frames. Walking away from the run, a frame
    is fading while its contrast is over FADE_STEP lower than the next frame's further out (the picture is still
    fading towards the blank); a hard cut to black has none."""
    fading = np.zeros(len(blank), dtype=bool)
    n = len(blank)
    for t in range(n):
        if not blank[t]:
            continue
        if t + 1 < n and not blank[t + 1]:  # the end of a run: fading in after it
            u = t + 1
            while u + 1 < n and not blank[u + 1] and contrast[u] * (1 + FADE_STEP) < contrast[u + 1]:
                fading[u] = True
                u += 1
        if t > 0 and not blank[t - 1]:  # the start of a run: fading out before it
            u = t - 1
            while u > 0 and not blank[u - 1] and contrast[u] * (1 + FADE_STEP) < contrast[u - 1]:
                fading[u] = True
                u -= 1
    return fading


def clip_spans(gap: np.ndarray, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, end) frame spans of the clips: the runs of frames that are not in a `gap` ((T,) bool: blank or
    fading), split at the `cuts`."""
    starts = set(cuts)
    spans, start = [], None
    for t, in_gap in enumerate(gap):
        if start is not None and (in_gap or t in starts):
            spans.append((start, t))
            start = None
        if start is None and not in_gap:
            start = t
    if start is not None:
        spans.append((start, len(gap)))
    return spans


def split_video(video: VideoAnalysis, cut_threshold: float) -> tuple[list[int], np.ndarray, list[tuple[int, int]]]:
    """(cuts, gap, spans) of an analysed video: the frames that start a new shot (`find_cuts`, pairs touching a
    gap left out), the (T,) bool frames that belong to no clip (blank or fading), the clips' [start, end) spans."""
    gap = video.blank | fades(video.contrast, video.blank)
    scores = video.cut_scores.copy()
    scores[gap | np.roll(gap, 1)] = np.nan  # the pair (t-1, t) touches a gap
    cuts = find_cuts(scores, cut_threshold)
    return cuts, gap, clip_spans(gap, cuts)


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive True entries of the (T,) bool `mask`."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def score_clip(video: VideoAnalysis, start: int, end: int) -> tuple[float, float | None]:
    """(motion, chaos) of the clip [start, end) of `video`: motion pooled over the pairs inside it, px/frame (0
    when nothing is textured); chaos pooled over its consecutive pairs of flows (None when nothing moves)."""
    pairs = slice(start + 1, end)
    count = int(video.textured[pairs].sum())
    motion = float(video.motion_sum[pairs].sum() / count) if count else 0.0
    flows = slice(start + 2, end)
    moving = float(video.flow_sum[flows].sum())
    chaos = float(video.change_sum[flows].sum() / moving) if moving > 1e-6 else None
    return motion, chaos


def judge(frames: int, motion: float, chaos: float | None, settings: CurateSettings) -> tuple[str | None, str]:
    """(reason, why): the first of REASONS that drops a clip, or None to keep it; `why` says it with the numbers."""
    s = settings
    if frames < s.min_frames:
        return "too_short", f"{frames} frames < min_frames {s.min_frames}"
    if motion < s.min_motion:
        return "static", f"motion {motion:.3f} < min_motion {s.min_motion:g} px/frame"
    if chaos is not None and chaos > s.max_chaos:
        return "chaotic", f"chaos {chaos:.3f} > max_chaos {s.max_chaos:g}"
    if motion > s.max_motion:
        return "too_fast", f"motion {motion:.2f} > max_motion {s.max_motion:g} px/frame"
    shown = "n/a" if chaos is None else f"{chaos:.3f}"
    return None, f"motion {motion:.3f} px/frame, chaos {shown}: within every threshold"


# ------------------------------------------------------------------------------------------------ the job


@dataclass
class CurateResult:
    output: Path
    settings: CurateSettings
    videos: list[dict]  # per source video: fps, frames, size, cut frames, gaps (fades, blank frames)
    clips: list[dict]  # per clip, kept or dropped: the records of curation.json
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)

    @property
    def kept(self) -> list[dict]:
        return [c for c in self.clips if c["kept"]]

    def report(self) -> list[str]:
        """The short report `svd3d curate` prints."""
        s = self.summary
        dropped = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in s["dropped"].items() if n) or "none"
        gaps = f", {_count(s['gaps'], 'fade or blank stretch', 'fades or blank stretches')} ({s['gap_frames']} " \
            "frames left out)" if s["gaps"] else ""  # fmt: skip
        return [
            f"{_count(s['videos'], 'video')} ({s['frames']} frames, {s['seconds']:.1f} s): "
            f"{_count(s['cuts'], 'cut')}{gaps} -> {_count(s['clips'], 'clip')}",
            f"kept {_count(s['kept'], 'clip')} ({s['kept_frames']} frames, {s['kept_seconds']:.1f} s); dropped "
            f"{s['clips'] - s['kept']}: {dropped}",
            "not run: aesthetic and text-overlay filters (no offline model is bundled; see curation.json)",
            f"wrote {self.output}/ ({_count(s['kept'], 'clip')} + {MANIFEST}) in {self.seconds:.1f} s",
        ]


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def clip_ids(sources: list[str]) -> dict[str, str]:
    """The base of each source's clip names: its stem ("walk.mp4" -> "walk"), its whole name made safe when two
    sources share a stem ("walk_mp4", "walk_webm")."""
    stems = [Path(s).stem if Path(s).suffix else s for s in sources]
    clash = {s for s, n in Counter(stems).items() if n > 1}
    safe = {s: (s.replace(".", "_") if stem in clash else stem) for s, stem in zip(sources, stems, strict=True)}
    return {s: b.replace("#", "_").replace("/", "_") for s, b in safe.items()}


def curate(videos: str | Path, output: str | Path, settings: CurateSettings, *, progress: bool = True) -> CurateResult:
    """Split every video of the folder `videos` at its cuts, score each clip's motion, and write the kept clips
    (MP4, the source's size and frame rate, cropped to even sides for H.264) and curation.json into the folder
    `output`, staged and swapped into place when complete (svd3d.outputs): an interrupted job leaves nothing
    there that looks finished and an earlier output as it was."""
    start_time = time.perf_counter()
    videos, out = Path(videos), Path(output)

    # 1. check inputs before any work: thresholds, OpenCV, the output folder, every video opened and decoded once
    settings = settings.check()
    require_cv2()
    sources = find_clips(videos)
    outputs.check_replaceable(out)
    for path in sources:
        clip_fps(path)
        frames = iter_frames(path)
        if next(frames, None) is None:
            raise SVD3DError(f"video {path} has no frames; remove it from {videos}")
        frames.close()
    names = [p.relative_to(videos).as_posix() for p in sources]
    bases = clip_ids(names)

    # 2. analyse each video: cut scores, contrast (blank frames, fades) and flow statistics of every pair of frames
    analyses = [analyse_video(p, n, settings.flow, progress=progress) for p, n in zip(sources, names, strict=True)]

    # 3. split at the cuts and around fades and blank frames; score and judge each clip
    records, clips = [], []
    for video in analyses:
        cuts, gap, spans = split_video(video, settings.cut_threshold)
        records.append({
            "source": video.source, "fps": round(video.fps, 4), "frames": video.frames,
            "seconds": round(video.frames / video.fps, 3), "width": video.width, "height": video.height,
            "cuts": cuts, "gaps": [[int(a), int(b)] for a, b in mask_runs(gap)], "gap_frames": int(gap.sum()),
            "clips": len(spans),
        })  # fmt: skip
        for index, (start, end) in enumerate(spans):
            motion, chaos = score_clip(video, start, end)
            reason, why = judge(end - start, motion, chaos, settings)
            name = f"{bases[video.source]}_{index:03d}"
            clips.append({
                "id": name, "source": video.source, "index": index, "start_frame": start, "end_frame": end,
                "frames": end - start, "start_s": round(start / video.fps, 3), "end_s": round(end / video.fps, 3),
                "fps": round(video.fps, 4), "motion": round(motion, 4),
                "chaos": None if chaos is None else round(chaos, 4), "kept": reason is None, "reason": reason,
                "why": why, "file": f"{name}.mp4" if reason is None else None,
            })  # fmt: skip
        kept = sum(c["kept"] for c in clips if c["source"] == video.source)
        log.info("%s: %d frames, %s, %s, %d kept", video.source, video.frames, _count(len(cuts), "cut"),
                 _count(len(spans), "clip"), kept)  # fmt: skip
    summary = _summary(records, clips)

    # 4. write the kept clips and the manifest into a staging folder, swapped into place when complete
    by_video = {v.source: v for v in analyses}
    with outputs.replacing(out, "curate") as tmp:
        for source in names:
            kept = [c for c in clips if c["source"] == source and c["kept"]]
            if kept:
                _write_clips(by_video[source], kept, tmp, progress)
        manifest = {
            "written_by": "svd3d curate",
            "svd3d_version": __version__,
            "videos_folder": str(videos.resolve()),
            "settings": settings.record(),
            "filters_not_run": NOT_RUN,
            "summary": summary,
            "videos": records,
            "clips": clips,
        }
        media.write_json(tmp / MANIFEST, manifest)
    result = CurateResult(out, settings, records, clips, summary=summary)
    result.seconds = time.perf_counter() - start_time
    return result


def _summary(videos: list[dict], clips: list[dict]) -> dict:
    kept = [c for c in clips if c["kept"]]
    return {
        "videos": len(videos),
        "frames": sum(v["frames"] for v in videos),
        "seconds": round(sum(v["seconds"] for v in videos), 3),
        "cuts": sum(len(v["cuts"]) for v in videos),
        "gaps": sum(len(v["gaps"]) for v in videos),
        "gap_frames": sum(v["gap_frames"] for v in videos),
        "clips": len(clips),
        "kept": len(kept),
        "kept_frames": sum(c["frames"] for c in kept),
        "kept_seconds": round(sum(c["frames"] / c["fps"] for c in kept), 3),
        "dropped": {r: sum(c["reason"] == r for c in clips) for r in REASONS},
    }


def _write_clips(video: VideoAnalysis, kept: list[dict], folder: Path, progress: bool) -> None:
    """Decode `video` again and stream the frames of each `kept` clip into folder/<its file> (MP4, even sides)."""
    width, height = video.width // 2 * 2, video.height // 2 * 2  # yuv420p needs even sides: drop an odd last one
    spans = {c["start_frame"]: c for c in kept}
    writer, end = None, -1
    bar = tqdm(desc=f"write {video.source}", unit="frame", disable=None if progress else True, leave=False)
    count = 0
    try:
        for t, frame in enumerate(iter_frames(video.path)):
            count = t + 1
            if t in spans:
                writer = media.mp4_writer(folder / spans[t]["file"], width, height, video.fps)
                end = spans[t]["end_frame"]
            if writer is not None:
                writer.send(np.ascontiguousarray(frame[:height, :width]))
                bar.update()
                if t + 1 == end:
                    writer.close()
                    writer = None
    finally:
        if writer is not None:
            writer.close()
        bar.close()
    if count != video.frames:
        raise SVD3DError(f"video {video.path} gave {count} frames on a second read, {video.frames} on the first; "
                         "it changed while being curated: run svd3d curate again")  # fmt: skip
