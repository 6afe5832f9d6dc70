"""How good is the asset made from an orbit model's own views? For held-out procedural objects, generate the orbit
from the object's input view, reconstruct a mesh from the generated views and score it against the object's true
mesh, beside the visual hull of the same views and, as the ceiling, the field fitted to ground-truth renders.

Protocol, stated once:

- Objects: procedural object i is `random_object(object_rng(seed, i))` and is rendered by `render_object_orbits`
  with the generator as it leaves `random_object`, at the model's size and view count with the dataset's settings
  (headlight, supersample 3, one static then one dynamic orbit, elevations drawn from the default range, a random
  start azimuth): exactly sample "proc-00000i#<orbit>" of `svd3d train data procedural --seed SEED`. The default
  seed 777 is one the bundled model never trained on. The true mesh is that object turned by its start azimuth,
  so it sits in the frame of the orbit's cameras (frame 0 at azimuth 0).
- Views: frame 0 of the chosen orbit is the conditioning image, used as it is (preprocess=False, as `svd3d eval
  orbit` does); the model generates the orbit's T views at the orbit's elevations and azimuths with seed SEED + i.
  The generated views and their cameras are written as an `svd3d orbit` folder (`write_orbit_folder`).
- Methods: `field` and `hull` are `svd3d recon` (defaults, vertex colours, FACES faces) on the generated views;
  `field-gt` is `svd3d recon` on the dataset's ground-truth renders of the same cameras, written the same way (RGB
  on white, the same mask rule, the input view trusted alike), so it differs from `field` only in the pixels: its
  gap to `field` is what the generated views cost.
- Scores: `svd3d.eval.metrics.compare_meshes` with its default protocol (each mesh normalised to a unit bounding
  box; Chamfer, F-score at 0.01, volume IoU, normal consistency where it measures it), mean over objects. A
  reconstruction that fails (e.g. views that share no volume) is counted and left out of its method's means.
- "field beats hull": objects where the field's Chamfer is strictly lower (normal consistency strictly higher)
  than the hull's, both from the generated views.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from svd3d import defaults, media, outputs, signals
from svd3d.cameras import DEFAULT_FOV_DEG, Intrinsics, orbit_c2w
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.eval import plots
from svd3d.eval.family import family_samples
from svd3d.eval.metrics import compare_meshes
from svd3d.eval.orbit import load_orbit_model, model_generator
from svd3d.pipelines.common import check_positive
from svd3d.pipelines.orbit import choose_orbit, write_orbit_folder
from svd3d.recon.mesh import check_faces
from svd3d.recon.pipeline import reconstruct
from svd3d.training.data import DEFAULT_ORBITS, RenderOrbitSettings
from svd3d.training.meshes import object_rng, render_object_orbits
from svd3d.training.procedural import random_object

log = logging.getLogger(__name__)

PROTOCOL = __doc__  # written into every result
Method = Literal["field", "hull", "field-gt"]
METHODS: tuple[Method, ...] = ("field", "hull", "field-gt")
LABELS = {"field": "field, generated views", "hull": "hull, generated views", "field-gt": "field, GT renders (ceiling)"}
# MeshScores fields shown in the table, with their best direction
COLUMNS = {
    "chamfer": "Chamfer ↓",
    "f_score": "F-score ↑",
    "volume_iou": "volume IoU ↑",
    "normal_consistency": "normal cons. ↑",
}
OrbitKind = Literal["static", "dynamic"]


@dataclass(frozen=True)
class HeldOutObject:
    """One procedural object as the dataset builder makes it, with one of its orbits."""

    name: str  # "proc-000003#static", as the dataset names the sample
    mesh: object  # trimesh.Trimesh: the true mesh in the orbit's frame (turned by the start azimuth)
    frames: np.ndarray  # (T, S, S, 3) uint8 ground-truth renders on white; 0 = the input view
    elevations: np.ndarray  # (T,) degrees
    azimuths: np.ndarray  # (T,) degrees, 0 first, increasing


def _objects(settings: dict) -> str:
    """What the evaluated objects were, for titles."""
    return (
        "object(s) of the held-out family" if settings.get("family") == "held-out" else "held-out procedural object(s)"
    )


def family_objects(family: str, seed: int, objects: int, size: int, views: int, orbit: OrbitKind):
    """Yield objects 0 .. objects-1 of `family` with their `orbit` sample: "procedural" is `held_out_object`;
    "held-out" is the `svd3d eval orbit --family held-out` sample (svd3d.eval.family: kinds no training run makes,
    photographed by another camera and framed by `svd3d orbit`'s preprocessing), its input view that preprocessed
    picture and its truth the framed mesh."""
    if family == "procedural":
        yield from (held_out_object(seed, i, size, views, orbit) for i in range(objects))
        return
    if family != "held-out":
        raise SVD3DError(f"unknown family {family!r}; choose procedural or held-out")
    for sample in family_samples("held-out", objects, size=size, views=views, seed=seed):
        if sample.name.endswith(f"#{orbit}"):
            frames = sample.truth[..., :3].copy()  # the renders' RGB is on white already
            frames[0] = np.asarray(sample.prepared.image.convert("RGB"))  # the input a user's photo becomes
            yield HeldOutObject(sample.name, sample.mesh, frames, sample.elevations, sample.azimuths)


def held_out_object(seed: int, index: int, size: int, views: int, orbit: OrbitKind) -> HeldOutObject:
    """Object `index` of `svd3d train data procedural --seed seed`, rendered at `size` px with `views` views per
    orbit, and its `orbit` sample (module docstring)."""
    trimesh = signals.import_whole("trimesh")

    rng = object_rng(seed, index)
    mesh = random_object(rng)
    # every orbit of the dataset, in its order: the draws of one orbit depend on those before it
    rendered = render_object_orbits(mesh, rng, RenderOrbitSettings(size=size, frames=views).check())
    k = DEFAULT_ORBITS.index(orbit)
    turned = mesh.copy()  # as render_object_orbits turns it: the view from `start` becomes azimuth 0
    turned.apply_transform(
        trimesh.transformations.rotation_matrix(math.radians(-rendered["start_azimuth"]), [0.0, 1.0, 0.0])
    )
    return HeldOutObject(
        f"proc-{index:06d}#{orbit}",
        turned,
        rendered["frames"][k],
        rendered["elevations"][k].astype(np.float64),
        rendered["azimuths"][k].astype(np.float64),
    )


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ObjectAsset:
    """One evaluated object: its scores per method (None where the reconstruction failed) and timings."""

    name: str
    scores: dict[str, object]  # method (METHODS) -> svd3d.eval.metrics.MeshScores, or None where it failed
    errors: dict[str, str]  # method -> why its reconstruction failed (only failed ones)
    faces: dict[str, int]  # method -> faces of the reconstructed mesh
    seconds: dict[str, float]  # "generate", then each method's reconstruction


@dataclass(frozen=True)
class AssetEval:
    """What `evaluate_asset` measured: per-object and mean mesh scores of each method."""

    model: str
    objects: list[ObjectAsset]
    settings: dict  # objects, seed, orbit, views, size, steps, faces, device, dtype
    metric_protocol: str  # compare_meshes' own protocol line
    protocol: str = field(default=PROTOCOL, repr=False)

    def mean(self, method: str) -> dict[str, float]:
        """metric -> mean over the objects whose reconstruction succeeded (NaN where none did)."""
        ok = [o.scores[method] for o in self.objects if o.scores[method] is not None]
        return {m: float(np.mean([getattr(s, m) for s in ok])) if ok else math.nan for m in COLUMNS}

    def failed(self, method: str) -> int:
        return sum(o.scores[method] is None for o in self.objects)

    def field_beats_hull(self) -> dict[str, int]:
        """metric -> objects where the field (generated views) strictly beats the hull: lower Chamfer, higher
        normal consistency. A failed hull loses to a field that worked."""
        wins = {}
        for metric, lower in (("chamfer", True), ("normal_consistency", False)):
            count = 0
            for o in self.objects:
                f, h = o.scores["field"], o.scores["hull"]
                if f is None:
                    continue
                if h is None:
                    count += 1
                    continue
                a, b = getattr(f, metric), getattr(h, metric)
                count += a < b if lower else a > b
            wins[metric] = count
        return wins

    def table(self) -> str:
        """Markdown: a row per method (means over objects), the generated views' cost, the field-vs-hull line."""
        metrics, s = list(COLUMNS), self.settings
        head = " | ".join(COLUMNS[m] for m in metrics)

        def row(label: str, values: dict, recon_s: str, failed: str, signed: bool = False) -> str:
            sign = "+" if signed else ""
            cells = " | ".join(f"{values[m]:{sign}.4f}" for m in metrics)
            return f"| {label} | {cells} | {recon_s} | {failed} |"

        def seconds(method: str) -> str:
            return f"{np.mean([o.seconds[method] for o in self.objects]):.1f}"

        cost = {m: self.mean("field")[m] - self.mean("field-gt")[m] for m in metrics}
        n = len(self.objects)
        wins = self.field_beats_hull()
        beats = (
            f"field beats hull on {wins['chamfer']} of {n} objects (Chamfer), {wins['normal_consistency']} of {n} "
            "(normal consistency)"
        )
        generate_s = np.mean([o.seconds["generate"] for o in self.objects])
        lines = [
            f"asset from generated views: {n} {_objects(s)} (seed {s['seed']}), {self.model}, "
            f"{s['orbit']} orbit of {s['views']} views at {s['size']}px, {s['steps']} steps, {s['faces']} faces; "
            f"generation {generate_s:.1f} s per object",
            "",
            f"| method | {head} | recon s | failed |",
            "|---|" + "---|" * (len(metrics) + 2),
            *(row(LABELS[m], self.mean(m), seconds(m), str(self.failed(m))) for m in METHODS),
            row("generated − GT views (field)", cost, "", "", signed=True),
            "",
            beats,
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Every number: settings, means, failures, wins, per-object scores and timings, both protocols."""

        def scores(s) -> dict | None:
            return None if s is None else {k: v for k, v in asdict(s).items() if k != "protocol"}

        return {
            "model": self.model,
            "settings": self.settings,
            "mean": {m: self.mean(m) for m in METHODS},
            "failed": {m: self.failed(m) for m in METHODS},
            "field_beats_hull": self.field_beats_hull(),
            "objects": [
                {
                    "name": o.name,
                    "scores": {m: scores(s) for m, s in o.scores.items()},
                    "errors": o.errors,
                    "faces": o.faces,
                    "seconds": o.seconds,
                }
                for o in self.objects
            ],
            "metric_protocol": self.metric_protocol,
            "protocol": self.protocol,
        }

    def write_json(self, path: str | Path) -> None:
        """Write to_dict() to path, atomically; an existing file there must be svd3d's own (svd3d.outputs)."""

        outputs.check_file_replaceable(Path(path))
        media.write_json(Path(path), {"written_by": "svd3d eval asset", **self.to_dict()})

    def plot_panels(self) -> list[plots.Panel]:
        """Per object, bars of the field's and the hull's mesh (generated views) and the field on ground-truth
        renders (the ceiling): Chamfer, volume IoU, normal consistency."""
        groups = [o.name.split("#")[0] for o in self.objects]
        panels = []
        for metric in ("chamfer", "volume_iou", "normal_consistency"):
            bars = {
                m: [None if o.scores[m] is None else float(getattr(o.scores[m], metric)) for o in self.objects]
                for m in METHODS
            }
            panels.append(plots.BarPanel(COLUMNS[metric], COLUMNS[metric].rstrip(" ↑↓"), groups, bars, LABELS))
        return panels

    def write_plot(self, path: str | Path) -> Path:
        """The plot_panels() as a PNG at `path` (svd3d.eval.plots: checked, written atomically)."""
        s = self.settings
        title = (f"{self.model}: meshes of {len(self.objects)} {_objects(s)} (seed {s['seed']}), {s['orbit']} "
                 f"orbit, {s['faces']} faces")  # fmt: skip
        return plots.write_plot(path, title, self.plot_panels(), "eval asset")


# ------------------------------------------------------------------------------------------------- evaluate


def evaluate_asset(
    model=None,
    *,
    objects: int = 8,
    seed: int = 777,
    orbit: OrbitKind | None = None,
    steps: int | None = None,
    faces: int = 5000,
    family: str = "procedural",
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    progress: bool = True,
) -> AssetEval:
    """Generate each of `objects` held-out procedural objects' orbit with an orbit model, reconstruct it (field and
    hull) and score the meshes against the true ones, beside the field on ground-truth renders (module docstring).

    `model`: a name / path / hub id / SVDModel of an orbit model (the bundled default when None); `steps`: the
    model's default when None; `faces`: the reconstructions' face budget (at least svd3d.recon.mesh.MIN_FACES);
    `orbit`: static or dynamic, by default the one `svd3d orbit` meshes (dynamic for a model that takes cameras);
    `family`: "procedural" (the module docstring's objects) or "held-out" (`family_objects`: kinds no training run
    makes, their input views through `svd3d orbit`'s preprocessing).
    """
    from tqdm.auto import tqdm

    # 1. check inputs
    check_positive("objects", objects, "--objects")
    check_positive("steps", steps, "--steps")
    if orbit not in ("static", "dynamic", None):
        raise SVD3DError(f"orbit must be 'static' or 'dynamic', got {orbit!r}")
    faces = check_faces(faces)
    if family not in ("procedural", "held-out"):
        raise SVD3DError(f"unknown family {family!r}; use --family procedural or held-out")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)

    # 2. the model, checked to be an orbit model
    orbit_model = load_orbit_model(model, dtype, device, "svd3d eval asset")
    info = orbit_model.info
    has_camera = "azimuths_rad" in orbit_model.unet.vector_names
    # by default the orbit `svd3d orbit` meshes: dynamic for a model that takes cameras (choose_orbit)
    orbit = choose_orbit(orbit or "auto", has_camera, meshed=True)
    if orbit == "dynamic" and not has_camera:
        raise SVD3DError(f"{info.name} takes no camera and makes only static orbits; use --orbit static")
    steps = steps or info.num_steps
    generate = model_generator(orbit_model, steps=steps, dtype=dtype, device=device)
    size, views = info.width, info.num_frames
    log.info("eval asset: %s on %d object(s), %s orbits of %d views at %dpx", orbit_model.source, objects, orbit,
             views, size)  # fmt: skip

    # 3. per object: render, generate, write both orbit folders, reconstruct three times, score
    results, metric_protocol = [], ""
    with tempfile.TemporaryDirectory(prefix="svd3d-eval-asset-") as tmp:
        made = family_objects(family, seed, objects, size, views, orbit)
        for i, obj in enumerate(tqdm(made, total=objects, desc="objects", unit="object", disable=not progress)):
            started = time.perf_counter()
            generated = np.asarray(generate(obj.frames[0], obj.elevations, obj.azimuths, seed + i), np.float32)
            seconds = {"generate": time.perf_counter() - started}
            root = Path(tmp) / f"{i:03d}"
            folders = {
                "generated": _orbit_folder(root / "generated", obj, generated, info.fov_deg),
                "gt": _orbit_folder(root / "gt", obj, obj.frames.astype(np.float32) / 255.0, DEFAULT_FOV_DEG),
            }
            scores, errors, n_faces = {}, {}, {}
            for method in METHODS:
                views_folder = folders["gt" if method == "field-gt" else "generated"]
                started = time.perf_counter()
                try:
                    mesh = _reconstruct(views_folder, root / method, method, faces, seed=0, device=str(dev))
                except SVD3DError as err:
                    log.warning("eval asset: %s of %s failed: %s", method, obj.name, err)
                    scores[method], errors[method] = None, str(err)
                    seconds[method] = time.perf_counter() - started
                    continue
                seconds[method] = time.perf_counter() - started
                scores[method] = compare_meshes(mesh, obj.mesh)
                metric_protocol = scores[method].protocol
                n_faces[method] = len(mesh.faces)
            results.append(ObjectAsset(obj.name, scores, errors, n_faces, seconds))
            log.info("eval asset: %s: %s (s: %s)", obj.name, "; ".join(
                f"{m} Chamfer {s.chamfer:.4f} F {s.f_score:.4f} IoU {s.volume_iou:.4f} "
                f"NC {s.normal_consistency:.4f}" for m, s in scores.items() if s is not None),
                ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))  # fmt: skip

    # 4. settings; means and wins are computed by AssetEval from the per-object scores
    settings = {
        "objects": objects,
        "family": family,
        "seed": seed,
        "orbit": orbit,
        "views": views,
        "size": size,
        "steps": steps,
        "faces": faces,
        "model_fov_deg": info.fov_deg,
        "render_fov_deg": DEFAULT_FOV_DEG,  # render_object_orbits renders at render_views' default camera
        "dtype": str(torch_dtype).removeprefix("torch."),
        "device": str(dev),
    }
    return AssetEval(orbit_model.source, results, settings, metric_protocol)


def _orbit_folder(folder: Path, obj: HeldOutObject, views: np.ndarray, fov_deg: float) -> Path:
    """(T, S, S, 3) float views in [0, 1] of obj's orbit cameras -> an `svd3d orbit` folder (input.png, frames/,
    transforms.json, ...) at `folder`, cameras at the default radius with `fov_deg`."""
    from PIL import Image

    folder.mkdir(parents=True)
    side = views.shape[1]
    intrinsics = Intrinsics.from_fov(side, side, fov_deg)
    c2w = orbit_c2w(obj.elevations, obj.azimuths)
    write_orbit_folder(folder, Image.fromarray(obj.frames[0]), views, obj.elevations, obj.azimuths, c2w, intrinsics)
    return folder


def _reconstruct(views: Path, out: Path, method: str, faces: int, *, seed: int, device: str):
    """`svd3d recon` of the views folder into `out` with vertex colours (scoring needs only the geometry)."""

    recon_method = "field" if method == "field-gt" else method
    result = reconstruct(
        views, method=recon_method, formats=("ply",), faces=faces, uv=False, output=out, device=device, seed=seed,
        progress=False,
    )  # fmt: skip
    return result.mesh
