"""Throughput of many objects on this machine: items per minute, a batch against a plain per-image loop.

Orbit generation (bundled tiny-orbit, views only unless --mesh) of N images, three ways, in the same run:

    loop          `svd3d orbit IMAGE -o out/NAME` once per image (a shell loop: a process and a model load each)
    batch         `svd3d orbit FOLDER -o out` (one process, the model loaded once)
    batch x2      `torchrun --nproc-per-node 2 -m svd3d orbit FOLDER -o out` (2 processes, each takes half the
                  images and half the cores)

and `svd3d data meshes` over the bench meshes with 1 and 2 --workers. Prints one markdown table per job, each
with its ratio to the first row.

    python benchmarks/batch.py [--items 16] [--mesh] [--meshes DIR] [--copies 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "assets" / "examples").glob("toy_*.png"))  # objects on a plain background
LAUNCH = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
SVD3D = [sys.executable, "-m", "svd3d", "-q"]


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, capture_output=True)
    return time.perf_counter() - start


def images(folder: Path, n: int) -> list[Path]:
    """n input images named item-00.png ...: the bundled examples, in turn."""
    folder.mkdir(parents=True)
    paths = [folder / f"item-{i:02d}.png" for i in range(n)]
    for i, path in enumerate(paths):
        shutil.copy(EXAMPLES[i % len(EXAMPLES)], path)
    return paths


def mesh_copies(source: Path, folder: Path, copies: int) -> int:
    """`copies` copies of each bench mesh (with its texture and material files) in subfolders; returns the count."""
    count = 0
    for c in range(copies):
        shutil.copytree(source, folder / f"copy-{c}")
        count += sum(1 for p in source.iterdir() if p.suffix.lower() in (".glb", ".obj", ".ply", ".stl"))
    return count


def table(title: str, unit: str, rows: list[tuple[str, int, float]]) -> str:
    base = rows[0][1] / rows[0][2]
    lines = [
        f"### {title}",
        "",
        f"| how | {unit} | seconds | {unit} / min | vs {rows[0][0]} |",
        "|---|---|---|---|---|",
    ]
    for name, n, seconds in rows:
        lines.append(f"| {name} | {n} | {seconds:.1f} | {60 * n / seconds:.1f} | {n / seconds / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--mesh", action="store_true", help="each item also reconstructs its mesh")
    parser.add_argument("--meshes", type=Path, default=REPO.parent / "shared" / "bench" / "meshes")
    parser.add_argument("--copies", type=int, default=2, help="copies of the bench meshes for `svd3d data meshes`")
    parser.add_argument("--keep", type=Path, default=None, help="work here (kept) instead of a temporary folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="svd3d-batch-bench-"))
    cores = len(os.sched_getaffinity(0))
    views = [] if args.mesh else ["--no-mesh"]

    # 1. orbits: a loop of single-image commands, one batch process, two batch processes
    inputs = images(work / "inputs", args.items)
    alone = {"OMP_NUM_THREADS": str(cores)}
    rows = [("loop", args.items, sum(timed([*SVD3D, "orbit", str(p), *views, "-o", str(work / "loop" / p.stem)],
                                           alone) for p in inputs))]  # fmt: skip
    rows.append(("batch", args.items, timed([*SVD3D, "orbit", str(work / "inputs"), *views, "-o", str(work / "b1")],
                                            alone)))  # fmt: skip
    rows.append(("batch x2 (torchrun)", args.items,
                 timed([*LAUNCH, "-m", "svd3d", "-q", "orbit", str(work / "inputs"), *views, "-o", str(work / "b2")],
                       {"OMP_NUM_THREADS": str(max(1, cores // 2))})))  # fmt: skip
    what = "views + mesh" if args.mesh else "views"
    print(table(f"svd3d orbit, tiny-orbit, {what}, {cores} cores", "items", rows), "\n", flush=True)

    # 2. svd3d data meshes: 1 and 2 workers
    n = mesh_copies(args.meshes, work / "meshes", args.copies)
    data = [*SVD3D, "data", "meshes", str(work / "meshes"), "--size", "64"]
    rows = [(f"{w} worker{'s' if w > 1 else ''}", n, timed([*data, "--workers", str(w), "-o", str(work / f"d{w}")],
                                                           alone)) for w in (1, 2)]  # fmt: skip
    print(table(f"svd3d data meshes, 64 px, static + dynamic orbits, {cores} cores", "meshes", rows))
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
