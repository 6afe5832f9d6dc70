"""How well `svd3d curate` finds cuts and judges motion, on synthetic footage with known truth
(benchmarks/curate_footage.py): random shots of the example pictures and procedural textures (pans from slow to
too fast, zooms, static shots, shaking cameras, TV noise, flicker), joined by hard cuts and fades, as H.264 MP4s.

    python benchmarks/curate_bench.py --videos 12            # prints two markdown tables

1. Cuts: svd3d's detector (colour histograms + blank frames and fades) against PySceneDetect's ContentDetector and
   AdaptiveDetector at their defaults (where `scenedetect` is installed; it is not a dependency of svd3d). A true
   hard cut is found when a boundary lies within one frame of it; a fade when a boundary (or svd3d's gap) lies in
   its frames. A boundary near no true one is a false cut.
2. Motion: every true shot scored on its own span by svd3d with each flow method (DIS, the default, and
   Farnebäck): the measured pan speed against the true one, the chaos, and what the default thresholds decide.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from curate_footage import PICTURES, Shot, render  # noqa: E402

from svd3d.media import write_video  # noqa: E402
from svd3d.training import curate  # noqa: E402

FPS = 24.0


def random_shots(rng: np.random.Generator, count: int) -> list[Shot]:
    """`count` shots of random kinds, pictures, lengths and speeds; about one boundary in five a fade."""
    pictures = [*PICTURES, *(f"texture:{i}" for i in range(20))]
    shots = []
    for i in range(count):
        kind = rng.choice(["pan", "pan", "pan", "zoom", "static", "shake", "noise", "flicker"])
        speed = {"pan": float(rng.choice([0.5, 1, 2, 4, 8, 16])), "zoom": float(rng.uniform(1.005, 1.03)),
                 "shake": float(rng.uniform(3, 10))}.get(kind, 0.0)  # fmt: skip
        fade = int(rng.integers(4, 9)) if i and rng.random() < 0.2 else 0
        shots.append(Shot(kind, int(rng.integers(16, 49)), str(rng.choice(pictures)), speed=speed,
                          angle=float(rng.uniform(0, 360)), fade_in=fade))  # fmt: skip
    return shots


def score_boundaries(found: list[tuple[int, int]], truth: dict) -> dict:
    """found: boundaries as [first, last] frame ranges (a cut at t: [t, t]). Matches against the true cuts (within
    one frame) and fades (anywhere in their fading frames)."""
    fades = {f: next(s["fade_in"] for s in truth["shots"] if s["start"] == f) for f in truth["fades"]}
    windows = [(c - 1, c + 1, "cut", c) for c in truth["cuts"]] + [(f - k, f + k, "fade", f) for f, k in fades.items()]
    hit, false = set(), 0
    for first, last in found:
        match = [(kind, at) for lo, hi, kind, at in windows if first <= hi and last >= lo]
        hit |= set(match)
        false += not match
    return {
        "cuts": sum(("cut", c) in hit for c in truth["cuts"]),
        "fades": sum(("fade", f) in hit for f in truth["fades"]),
        "false": false,
    }


def svd3d_boundaries(video: curate.VideoAnalysis) -> list[tuple[int, int]]:
    cuts, gap, _ = curate.split_video(video, curate.CurateSettings().cut_threshold)
    return [(c, c) for c in cuts] + [(a, b - 1) for a, b in curate.mask_runs(gap)]


def scenedetect_boundaries(path: Path, detector) -> list[tuple[int, int]]:
    from scenedetect import detect

    return [(start.frame_num, start.frame_num) for start, _ in detect(str(path), detector)[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12, help="synthetic videos (6-9 shots each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import scenedetect  # noqa: F401

        detectors = {"PySceneDetect content": "ContentDetector", "PySceneDetect adaptive": "AdaptiveDetector"}
    except ImportError:
        detectors = {}
        print("(PySceneDetect is not installed: pip install scenedetect to compare with it)")

    rng = np.random.default_rng(args.seed)
    totals = defaultdict(Counter)
    seconds = Counter()
    shots_scored = []  # (shot, {flow: (motion, chaos)})
    n_cuts = n_fades = n_frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        for v in range(args.videos):
            footage = render(random_shots(rng, int(rng.integers(6, 10))), seed=args.seed * 1000 + v)
            path = Path(tmp) / f"v{v}.mp4"
            write_video(footage.frames, path, fps=FPS)
            truth = footage.truth
            n_cuts += len(truth["cuts"])
            n_fades += len(truth["fades"])
            n_frames += truth["frames"]
            analyses = {}
            for flow in curate.FLOWS:
                start = time.perf_counter()
                analyses[flow] = curate.analyse_video(path, path.name, flow, progress=False)
                seconds[f"svd3d ({flow} flow)"] += time.perf_counter() - start
            totals["svd3d"] += score_boundaries(svd3d_boundaries(analyses["dis"]), truth)
            for name, cls in detectors.items():
                import scenedetect

                start = time.perf_counter()
                found = scenedetect_boundaries(path, getattr(scenedetect, cls)())
                seconds[name] += time.perf_counter() - start
                totals[name] += score_boundaries(found, truth)
            for shot in truth["shots"]:
                a, b = shot["start"] + shot["fade_in"], shot["end"]
                following = [s for s in truth["shots"] if s["start"] == shot["end"]]
                b -= following[0]["fade_in"] if following else 0
                scores = {flow: curate.score_clip(an, a, b) for flow, an in analyses.items()}
                shots_scored.append((shot, b - a, scores))

    print(f"\n{args.videos} videos, {n_frames} frames at 320x180, {FPS:g} fps: {n_cuts} hard cuts, {n_fades} fades\n")
    print("| detector | hard cuts found (±1 frame) | fades found | false cuts | seconds |")
    print("|---|---|---|---|---|")
    print(f"| svd3d | {totals['svd3d']['cuts']}/{n_cuts} | {totals['svd3d']['fades']}/{n_fades} | "
          f"{totals['svd3d']['false']} | {seconds['svd3d (dis flow)']:.1f} (with the DIS flow) |")  # fmt: skip
    for name in detectors:
        t = totals[name]
        print(f"| {name} | {t['cuts']}/{n_cuts} | {t['fades']}/{n_fades} | {t['false']} | {seconds[name]:.1f} |")

    settings = curate.CurateSettings()
    timing = ", ".join(f"{flow} {seconds[f'svd3d ({flow} flow)']:.1f} s" for flow in curate.FLOWS)
    print(f"\nsvd3d's analysis (decoding, histograms, flow) of the {n_frames} frames: {timing}")
    print(
        "\n| shot | flow | shots | measured / true speed (median) | motion (median) | chaos (median) | "
        "decided (default thresholds) |"
    )
    print("|---|---|---|---|---|---|---|")
    groups = defaultdict(list)
    for shot, frames, scores in shots_scored:
        label = shot["kind"] if shot["kind"] != "pan" else f"pan {shot['speed']:g} px/frame"
        groups[label].append((shot, frames, scores))
    pans = sorted((k for k in groups if k.startswith("pan")), key=lambda k: float(k.split()[1]))
    for label in [*pans, *sorted(k for k in groups if not k.startswith("pan"))]:
        rows = groups[label]
        for flow in curate.FLOWS:
            motions = [s[flow][0] for _, _, s in rows]
            chaos = [s[flow][1] for _, _, s in rows if s[flow][1] is not None]
            speeds = [shot["speed"] for shot, _, _ in rows]
            ratio = f"{np.median(np.divide(motions, speeds)):.2f}" if label.startswith("pan") else ""
            # the shot's length is the footage's choice, not the motion's: judged as if long enough
            decided = Counter(curate.judge(max(f, settings.min_frames), *s[flow], settings)[0] or "kept"
                              for _, f, s in rows)  # fmt: skip
            decided_text = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in decided.most_common())
            print(
                f"| {label} | {flow} | {len(rows)} | {ratio} | {np.median(motions):.2f} | "
                f"{np.median(chaos) if chaos else float('nan'):.2f} | {decided_text} |"
            )


if __name__ == "__main__":
    main()
