"""`svd3d app`: the image -> 3D asset job as a local web page (Gradio; the optional extra `pip install -e ".[app]"`).

The page: upload an image or pick a bundled example; choose the model, the orbit, steps, seed and face budget (the
mesh method, elevation, object fraction, texture size and height under "More options"); press Generate; watch the
progress; see the views, the turntable clip and the textured mesh in a 3D viewer; download the GLB, the OBJ (a zip
with its material and texture) and the views (a zip with their cameras).

Every job is `svd3d.generate_asset`: `generate` only chooses a fresh folder for the request under the app's output
root (so two users never share one), takes the model from a `ModelCache` (each model loaded once, used by one job
at a time) and zips the downloads. Bad input is refused by the API's own checks and shown as its one-line message.
Nothing downloads at run time: Gradio's analytics and version check are off, there is no share link and no
server-side rendering, and the page's scripts and styles come from the gradio package itself.

gradio is imported only by `build_app` / `launch` (never by `import svd3d.app`), so `svd3d --help` stays instant.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import secrets
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import svd3d
from svd3d import defaults
from svd3d.errors import SVD3DError
from svd3d.image import load_image
from svd3d.outputs import atomic_file, check_writable

INSTALL_HINT = 'pip install -e ".[app]" (or pip install "svd3d[app]")'
EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
ORBITS = ("auto", "static", "dynamic")  # `svd3d orbit --orbit`
METHODS = ("field", "hull")  # `svd3d orbit --method` without nerfacto (its own venv, a GPU)
FACE_BUDGETS = ("auto", "mobile", "default", "hero")  # or a number


def orbit_models(extra: tuple[str, ...] = ()) -> list[str]:
    """The model names the page offers, the first its default: `extra` (the paths, folders or hub ids given to
    `svd3d app --model`), then the registry's orbit models, bundled before random."""
    names = [name for name, entry in svd3d.model_entries().items() if entry.kind == "orbit"]
    bundled = [n for n in names if not n.startswith("random-")]
    return [*dict.fromkeys([*extra, *bundled, *[n for n in names if n not in bundled]])]


def examples() -> list[Path]:
    """The bundled example images of objects (the orbit model's world), for the page's example picker."""
    return sorted(EXAMPLES.glob("toy_*.png"))


# ------------------------------------------------------------------------------------------------ the models


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: svd3d.SVDModel | None = None


class ModelCache:
    """Each model loaded once (svd3d.prepare_model, on `device` at `dtype` as the jobs resolve them) and kept for
    the app's life. `use(name)` lends it to one job at a time: two requests for one model take turns (the first
    loads it), requests for different models run side by side."""

    def __init__(self, device: str = defaults.DEVICE, dtype: str = defaults.DTYPE):
        self.device, self.dtype = device, dtype
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was loaded (tests: once per name)

    @contextlib.contextmanager
    def use(self, name: str | None) -> Iterator[svd3d.SVDModel]:  # None: the bundled orbit model
        with self._lock:
            slot = self._slots.setdefault(name, _Slot())
        with slot.lock:
            if slot.model is None:
                slot.model = svd3d.prepare_model(name, "orbit", device=self.device, dtype=self.dtype)
                self.loads += 1
            yield slot.model

    def load(self, name: str) -> None:
        """Load `name` now (SVD3DError for a bad model, device or dtype), so its first job does not wait."""
        with self.use(name):
            pass


# ------------------------------------------------------------------------------------------------ one request


@dataclass(frozen=True)
class Request:
    """What the page asks for, in the API's names and defaults (`svd3d orbit`'s options)."""

    model: str | None = None  # a name, path or hub id; None: the bundled orbit model
    orbit: str = defaults.ORBIT
    steps: int | None = None  # None: the model's own
    seed: int = defaults.SEED
    faces: str = defaults.FACES
    method: str = defaults.RECON_METHOD
    elevation: float = defaults.ELEVATION
    object_fraction: float = defaults.OBJECT_FRACTION
    texture: str = defaults.TEXTURE
    height: float | None = None  # metres; None: the reconstruction's own unit frame


@dataclass
class Generated:
    folder: Path  # this request's own folder under the app's output root
    output: Path  # the svd3d orbit folder inside it (index.html, mesh.glb, frames/, orbit.mp4, ...)
    views: list[tuple[Path, str]]  # each view's image and caption (index, azimuth, elevation)
    clip: Path  # the turntable
    glb: Path
    obj_zip: Path  # mesh.obj + mesh.mtl + mesh.png
    views_zip: Path  # frames/*.png + transforms.json
    summary: str  # markdown: what was made, its quality, timings
    asset: svd3d.AssetResult


def request_folder(root: Path) -> Path:
    """A new, empty folder for one request under `root`: time-stamped and random, so no two requests share one."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"{stamp}-{secrets.token_hex(3)}-", dir=root))


def _zip(dest: Path, files: list[tuple[Path, str]]) -> Path:
    """`files` ((path, name in the archive)) into the zip `dest`, written atomically."""
    with atomic_file(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in files:
            archive.write(path, name)
    return dest


def _summary(asset: svd3d.AssetResult, model: str, seconds: float) -> str:
    views, mesh = asset.views, asset.mesh.report
    q, s = mesh["quality"], views.settings
    return (
        f"**{s.num_frames} {s.orbit} views** at {s.size} px from `{model}` ({s.num_steps} steps, seed {s.seed}, "
        f"{s.dtype} on {s.device}); **mesh** {mesh['mesh']['faces']:,} faces, silhouette IoU "
        f"{q['silhouette_iou_mean']:.3f}, view PSNR {q['view_psnr_mean_db']:.1f} dB; {seconds:.1f} s in all. "
        f"Files: `{asset.output}`"
    )


def generate(
    image: str | Path, request: Request, *, root: Path, models: ModelCache, progress: bool = False
) -> Generated:
    """One request: `image` -> views -> textured mesh (svd3d.generate_asset) in a fresh folder under `root`, plus
    the downloads (OBJ zip, views zip). SVD3DError, with the API's one-line message, for bad input."""
    start = time.perf_counter()
    image = Path(image)
    recon = {"method": request.method, "formats": "glb,obj", "faces": request.faces, "texture": request.texture,
             "height": request.height, "progress": progress}  # fmt: skip

    # 1. check what the job checks first, before a model is loaded or lent: the image is one svd3d reads (the job's
    #    own load_image: a file, not empty, an image, not too large), the mesh options
    load_image(image)
    svd3d.check_mesh_options(recon)

    # 2. the job, in a folder of its own, with the model to itself
    folder = request_folder(root)
    out = folder / (image.stem or "asset")
    try:
        with models.use(request.model) as model:
            source = model.source
            asset = svd3d.generate_asset(
                image, output=out, recon=recon, model=model, orbit=request.orbit, steps=request.steps,
                seed=request.seed, elevation=request.elevation, object_fraction=request.object_fraction,
                device=models.device, dtype=models.dtype, progress=progress,
            )  # fmt: skip
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # a failed job leaves nothing (generate_asset removed its staging), not even the folder
        raise

    # 3. the downloads beside it: the OBJ with its material and texture, the views with their cameras
    frames = sorted((out / "frames").glob("*.png"))
    views = asset.views
    angles = zip(views.azimuths, views.elevations, strict=True)
    captions = [f"{i:03d}: {a:.0f}° / {e:.0f}°" for i, (a, e) in enumerate(angles)]
    obj = [out / n for n in ("mesh.obj", "mesh.mtl", "mesh.png") if (out / n).is_file()]
    obj_zip = _zip(folder / f"{out.name}-obj.zip", [(p, p.name) for p in obj])
    view_files = [(p, f"frames/{p.name}") for p in frames] + [(out / "transforms.json", "transforms.json")]
    views_zip = _zip(folder / f"{out.name}-views.zip", view_files)
    clip = next(out / n for n in ("orbit.mp4", "orbit.gif") if (out / n).is_file())
    return Generated(folder, out, list(zip(frames, captions, strict=True)), clip, out / "mesh.glb", obj_zip,
                     views_zip, _summary(asset, source, time.perf_counter() - start), asset)  # fmt: skip


def user_message(err: SVD3DError, upload: Path) -> str:
    """The API's message about an uploaded file, naming the file as the user knows it (its name, not the server's
    upload path)."""
    return str(err).replace(str(upload), upload.name)


# ------------------------------------------------------------------------------------------------ the page


def _gradio():
    """gradio, with its analytics and version check off (set before it is imported); SVD3DError with the install
    hint when it is missing."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise SVD3DError(f"svd3d app needs gradio, which is not installed: {INSTALL_HINT}") from None
    return gradio


CSS = "#views .thumbnail-item img {image-rendering: pixelated}"


def build_app(root: Path, models: ModelCache, model_names: list[str], concurrency: int = 1):
    """The Gradio page (a gr.Blocks, not launched). Outputs go to fresh folders under `root`; `concurrency` jobs
    run at once (the queue holds the rest, telling each user their place)."""
    gr = _gradio()

    def on_generate(image, model, orbit, steps, seed, faces, method, elevation, object_fraction, texture, height,
                    progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio's way)  # fmt: skip
        # preprocess=False: `image` is Gradio's upload record, the file as the user sent it (the API checks it)
        if not image or not image.get("path"):
            raise gr.Error("choose an image first: upload one, or pick an example below")
        upload = Path(image["path"])
        if model not in model_names:  # preprocess=False skips the dropdown's own check: a client could send any
            raise gr.Error(f"unknown model {model!r}; choose one of {', '.join(model_names)}")
        try:
            request = Request(
                model=model, orbit=orbit, steps=int(steps) if steps not in (None, "", 0) else None,
                seed=int(seed if seed not in (None, "") else defaults.SEED), faces=str(faces), method=method,
                elevation=float(elevation), object_fraction=float(object_fraction), texture=str(texture),
                height=None if height in (None, "", 0) else float(height),
            )  # fmt: skip
        except (TypeError, ValueError) as err:
            raise gr.Error(f"a setting is not a number: {err}") from None
        progress(0, desc="starting")
        try:
            made = generate(upload, request, root=root, models=models, progress=True)
        except SVD3DError as err:
            raise gr.Error(user_message(err, upload), print_exception=False) from None
        except OSError as err:  # the disk refused a write
            raise gr.Error(
                f"cannot write {err.filename or root}: {err.strerror or err}", print_exception=False
            ) from None
        return (
            [(str(p), caption) for p, caption in made.views],
            str(made.clip),
            str(made.glb),
            [str(made.glb), str(made.obj_zip), str(made.views_zip)],
            made.summary,
        )

    with gr.Blocks(title="svd3d", analytics_enabled=False) as app:
        gr.Markdown("## svd3d: one image to a textured 3D asset\nUpload an image of one object (or pick an "
                    "example), press **Generate**: views all around it, then a textured mesh.")  # fmt: skip
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="image", type="filepath", sources=["upload", "clipboard"], height=280,
                                 elem_id="input-image")  # fmt: skip
                model = gr.Dropdown(model_names, value=model_names[0], label="model", elem_id="model")
                with gr.Row():
                    orbit = gr.Dropdown(list(ORBITS), value=defaults.ORBIT, label="orbit", elem_id="orbit",
                                        info="auto: dynamic when meshed and the model takes cameras")  # fmt: skip
                    faces = gr.Dropdown(list(FACE_BUDGETS), value=defaults.FACES, allow_custom_value=True,
                                        label="face budget", info="or a number", elem_id="faces")  # fmt: skip
                with gr.Row():
                    steps = gr.Number(value=0, precision=0, minimum=0, label="steps", info="0: the model's own",
                                      elem_id="steps")  # fmt: skip
                    seed = gr.Number(value=defaults.SEED, precision=0, label="seed", elem_id="seed")
                with gr.Accordion("More options", open=False):
                    method = gr.Radio(list(METHODS), value=defaults.RECON_METHOD, label="mesh method",
                                      info="field: radiance field (best); hull: visual hull (seconds)",
                                      elem_id="method")  # fmt: skip
                    elevation = gr.Number(value=defaults.ELEVATION, label="elevation of the photo (degrees)")
                    object_fraction = gr.Number(value=defaults.OBJECT_FRACTION, label="object fraction of the view")
                    texture = gr.Textbox(value=defaults.TEXTURE, label="texture size (pixels, or auto)")
                    height = gr.Number(value=None, label="height in metres (empty: as reconstructed)")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                gr.Examples([[str(p)] for p in examples()], inputs=[image], label="examples", elem_id="examples")
            with gr.Column(scale=2):
                model3d = gr.Model3D(label="textured mesh (drag to turn)", height=420, elem_id="model3d")
                with gr.Row():
                    clip = gr.Video(label="turntable", autoplay=True, loop=True, height=240, elem_id="clip")
                    downloads = gr.File(label="downloads: GLB, OBJ (zip), views (zip)", file_count="multiple",
                                        elem_id="downloads")  # fmt: skip
                summary = gr.Markdown(elem_id="summary")
                gallery = gr.Gallery(label="views (azimuth / elevation)", columns=7, height="auto",
                                     object_fit="contain", elem_id="views")  # fmt: skip
        inputs = [image, model, orbit, steps, seed, faces, method, elevation, object_fraction, texture, height]
        button.click(on_generate, inputs, [gallery, clip, model3d, downloads, summary], preprocess=False,
                     concurrency_limit=concurrency, concurrency_id="generate", api_name="generate")  # fmt: skip
    return app


@dataclass
class Running:
    """A served app: its page's `url`, the output `root`; `wait()` serves until Ctrl-C, `close()` stops it."""

    app: object  # the gr.Blocks
    url: str
    root: Path

    def wait(self) -> None:
        """Serve until Ctrl-C (KeyboardInterrupt, raised here), then stop."""
        try:
            threading.Event().wait()
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # gradio's "Closing server running on port ..."
            self.app.close()


def launch(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    root: str | Path | None = None,
    extra_models: tuple[str, ...] = (),
    device: str = defaults.DEVICE,
    dtype: str = defaults.DTYPE,
    concurrency: int = 1,
    browser: bool = False,
) -> Running:
    """Serve the app on `host`:`port` (0: a free port) in the background and return; outputs go under `root` [a new
    temporary folder]. `browser`: open the page in the default browser."""
    # 1. check everything before serving: gradio, the options, the port, the output root, the default model (loaded
    #    now: a bad --model, --device or --dtype stops here, and the first request does not wait for it)
    _gradio()
    if concurrency < 1:
        raise SVD3DError(f"--concurrency must be at least 1, got {concurrency}")
    if not 0 <= port <= 65535:
        raise SVD3DError(f"--port must be 0..65535 (0: a free one), got {port}")
    port = _port(host, port)
    if root is not None:
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise SVD3DError(f"output folder {root} exists and is not a folder; choose another -o")
        check_writable(root / "x")
    names = orbit_models(extra_models)
    models = ModelCache(device, dtype)
    models.load(names[0])

    # 2. the page, its queue, the server
    root = root if root is not None else Path(tempfile.mkdtemp(prefix="svd3d-app-"))
    app = build_app(root, models, names, concurrency)
    app.queue(default_concurrency_limit=concurrency)
    try:
        app.launch(server_name=host, server_port=port, share=False, inbrowser=browser, prevent_thread_lock=True,
                   quiet=True, ssr_mode=False, pwa=False, mcp_server=False, show_error=True,
                   allowed_paths=[str(root), str(EXAMPLES)], footer_links=[], css=CSS)  # fmt: skip
    except OSError as err:
        raise SVD3DError(f"cannot serve on {host}:{port}: {err}; choose another --port (or leave it out)") from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return Running(app, f"http://{shown}:{port}/", root)


def _port(host: str, port: int) -> int:
    """`port` if it can be had on `host` (0: a free one); SVD3DError naming the fix if not."""
    import socket

    try:
        with socket.socket() as s:
            s.bind((host, port))
            return s.getsockname()[1]
    except OSError as err:
        raise SVD3DError(
            f"cannot serve on {host}:{port}: {err.strerror or err}; choose another --port (or leave it out for a free "
            "one) or --host"
        ) from None
