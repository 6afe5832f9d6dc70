"""The `svd3d` command line: parse the options, call the Python API (svd3d.api, through the package's lazy
attributes so that `svd3d --help` never imports torch), print what was written. No job logic lives here; the
defaults are svd3d.defaults'."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

import click

import svd3d
from svd3d import app as web_app
from svd3d import batch, defaults, media, signals, viewer
from svd3d.errors import SVD3DError
from svd3d.eval.plots import check_plot
from svd3d.image import parse_size
from svd3d.outputs import InterruptedAfterWriting, check_file_replaceable

NOTHING_WRITTEN = "nothing was written, and an earlier output there is as it was"


def _run(fn, *args, left: str = NOTHING_WRITTEN, **kwargs):
    """Call the API; user errors become one line on stderr and exit code 2. Ctrl-C, and SIGTERM (kill, timeout, a
    cluster's scheduler), unwind the job the same way (staged outputs are removed) and exit 130 / 143 with a line
    saying what was `left`; an error a library raised while being interrupted is reported as the interruption."""
    from diffusers.utils import logging as diffusers_logging  # imported here: `--help` stays instant
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    with signals.caught() as received:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as err:
            if isinstance(err, InterruptedAfterWriting):  # it arrived as the finished output was put in place
                left = f"{err} was complete and is in place"
            _interrupted(received, left)
        except (SVD3DError, OSError) as err:
            if received:  # e.g. a native module interrupted as it loaded reports "initialization failed"
                _interrupted(received, left)
            if isinstance(err, SVD3DError):
                click.echo(f"error: {err}", err=True)
            else:  # the machine refused a write (disk full, permissions changed during the job)
                where = f" {err.filename}" if err.filename else ""
                click.echo(f"error: cannot write{where}: {err.strerror or err}; {NOTHING_WRITTEN}", err=True)
            sys.exit(2)


class _Interrupted(SystemExit):
    """The exit of a job that Ctrl-C / SIGTERM interrupted (its code 130 / 143): `run` ends the process with it."""


def _interrupted(received: list[int], left: str) -> None:
    terminated = signal.SIGTERM in received
    click.echo(f"{'terminated' if terminated else 'interrupted'}: {left}", err=True)
    raise _Interrupted(143 if terminated else 130)


def run() -> None:
    """The `svd3d` command: the console script and `python -m svd3d`.

    An interrupted job, once its clean-up has run and its line is printed, ends the process with os._exit and the
    code it chose. Otherwise CPython may end it by SIGINT instead (exit -2 under a shell's 130): it remembers any
    KeyboardInterrupt that passed through Python code a native module ran as a string (pybind11's py::exec, which
    open3d and xatlas use), even one svd3d caught and handled."""
    try:
        main()
    except _Interrupted as done:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code)


def _size(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_size(value)
    except SVD3DError as err:
        raise click.BadParameter(str(err)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="svd3d")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def main(verbose: int, quiet: bool) -> None:
    """svd3d: one photo -> a short video (SVD / SVD-XT) or a game-ready 3D asset (SV3D)."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("svd3d").setLevel(level)


# options shared by the generation commands
_model = click.option(
    "--model", "-m", default=None, help="Bundled name, diffusers folder, sgm .safetensors file or hub id."
)
_config = click.option(
    "--config", type=click.Path(dir_okay=False), default=None,
    help="sgm yaml describing a single-file checkpoint that is not a released one (default: <ckpt>.yaml beside it).",
)  # fmt: skip
_dtype = click.option(
    "--dtype",
    default=defaults.DTYPE,
    show_default=True,
    help="auto (fp16 on CUDA, fp32 elsewhere), float32, float16, bfloat16.",
)
_device = click.option("--device", default=defaults.DEVICE, show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
TEXT_OPTIONS = ("prompt", "t2i_model", "t2i_steps", "t2i_guidance", "t2i_size", "t2i_suffix")  # the API's names


def _text_options(suffix: str, why: str):
    """--prompt and the text-to-image options of `svd3d video` and `svd3d orbit`; `suffix`: the job's default
    --t2i-suffix, `why`: what it is for."""
    options = [
        click.option(
            "--prompt",
            default=None,
            help="Start from text instead of an IMAGE: --t2i-model makes the image (seeded with --seed), "
            "then the job runs as from that image.",
        ),
        click.option(
            "--t2i-model",
            default=None,
            metavar="PATH_OR_HUB_ID",
            help="With --prompt: a diffusers text-to-image pipeline (a folder, or a hub id such as "
            "stabilityai/sd-turbo), loaded with AutoPipelineForText2Image.",
        ),
        click.option(
            "--t2i-steps",
            type=int,
            default=defaults.T2I_STEPS,
            help="Text-to-image sampling steps [the pipeline's own; turbo models want 1-4].",
        ),
        click.option(
            "--t2i-guidance",
            type=float,
            default=defaults.T2I_GUIDANCE,
            help="Text-to-image guidance scale [the pipeline's own; turbo models want 0].",
        ),
        click.option(
            "--t2i-size",
            callback=_size,
            default=None,
            help="Text-to-image WIDTHxHEIGHT, multiples of 8 [the pipeline's native size].",
        ),
        click.option(
            "--t2i-suffix",
            default=suffix,
            show_default=bool(suffix),
            help=f"Appended to the prompt{why} ('' for nothing).",
        ),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _prompt_stem(prompt: str | None) -> str:
    """An output name for a job made from text: the prompt's first words, 'a red balloon.' -> 'a-red-balloon'."""
    words = re.findall(r"[a-z0-9]+", (prompt or "").lower())[:6]
    return "-".join(words)[:48].strip("-") or "prompt"


def _batch_options(options: dict) -> dict:
    """A command's options for a batch: the text-to-image ones only where set (so that run_batch refuses them with
    a clear message), the suffix's default left out."""
    return {k: v for k, v in options.items() if k not in TEXT_OPTIONS or (v is not None and k != "t2i_suffix")}


def _lora_options(fn):
    """--lora (repeatable) and --lora-mode, shared by `svd3d video` and `svd3d orbit`."""
    fn = click.option(
        "--lora-mode", type=click.Choice(["fuse", "separate"]), default=defaults.LORA_MODE, show_default=True,
        help="fuse: add the adapters into the weights (full speed); separate: run them beside the weights as PEFT "
        "LoRA layers. The same output.",
    )(fn)  # fmt: skip
    return click.option(
        "--lora", "loras", multiple=True, metavar="ADAPTER[:SCALE]",
        help="A LoRA adapter (PEFT format): a bundled name (svd3d models), an adapter folder or a .safetensors file, "
        "with its scale [1]; repeatable, e.g. --lora tiny-video-pan-left:0.8 --lora zoom.safetensors.",
    )(fn)  # fmt: skip


@main.command()
@click.argument("inputs", nargs=-1, metavar="[IMAGE...]", type=click.Path(path_type=Path))
@_text_options(defaults.T2I_VIDEO_SUFFIX, "")
@_model
@click.option("--frames", type=int, default=None, help="Frames to generate [model default: SVD 14, SVD-XT 25].")
@click.option("--steps", type=int, default=None, help="Sampling steps [model default: SVD 25, SVD-XT 30].")
@click.option("--fps", type=int, default=None, help="Frame rate of the clip; the model sees fps - 1 [7].")
@click.option("--motion-bucket", type=int, default=None, help="Amount of motion, 0..255 [127].")
@click.option("--noise-aug", type=float, default=None, help="Noise added to the conditioning image [0.02].")
@click.option("--min-guidance", type=float, default=None, help="Guidance at the first frame [SVD 1.0, SVD-XT 1.5].")
@click.option("--max-guidance", type=float, default=None, help="Guidance at the last frame [SVD 2.5, SVD-XT 3.0].")
@click.option(
    "--seed", type=int, default=defaults.SEED, show_default=True, help="Random seed (noise is drawn on the CPU)."
)
@click.option("--size", callback=_size, default=None, help="Output WIDTHxHEIGHT, multiples of 8 [model default].")
@click.option("--decode-chunk", type=int, default=None, help="Frames decoded at once [min(frames, 14)].")
@_dtype
@_device
@click.option("--forward-chunking", is_flag=True, help="Chunk the UNet's feed-forward layers (less memory).")
@click.option("--offload", is_flag=True, help="Keep only the active network on the GPU (least memory, slower).")
@_config
@_lora_options
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output .mp4, .gif, .webp, or a folder for PNG frames [<image name>.mp4, or the prompt's first "
                   "words]; with several inputs a folder for their clips [out].")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif", "webp", "frames"]), default=None,
              help="Several inputs: each clip as ROOT/<name>.<format>, or frames: a folder of PNGs [mp4].")  # fmt: skip
def video(inputs: tuple[Path, ...], output: Path | None, fmt: str | None, **options) -> None:
    """Animate IMAGE into a short clip with an SVD / SVD-XT model.

    The image is resized to cover the output size with its aspect ratio kept and centre-cropped (never
    stretched); transparency is composited on white. run.json (every setting, versions, timings) is written
    beside the output.

    From text: --prompt "..." --t2i-model PATH_OR_HUB_ID (no IMAGE) makes the image first with a diffusers
    text-to-image model, writes it beside the clip (<name>.prompt.png, or prompt.png in a frames folder) and
    records the prompt and how the image was made in run.json.

    Many inputs: several images, a folder of them, a quoted glob pattern or a .txt / .jsonl manifest (per-item
    options) make a batch: each clip goes to ROOT/<name>.<format> under -o ROOT, every item is recorded in
    ROOT/results.jsonl, a rerun skips finished items, exit code 1 when some item failed.
    """
    if inputs and _is_batch(inputs, "video"):
        _batch("video", inputs, output, _batch_options(options), fmt=fmt or "mp4")
        return
    image = inputs[0] if inputs else None
    if fmt is not None and output is not None:
        raise click.UsageError("for one image, -o's suffix chooses the format: drop --format (or -o)")
    stem = image.stem if image is not None else _prompt_stem(options["prompt"])
    out = output or Path(stem if fmt == "frames" else f"{stem}.{fmt or 'mp4'}")
    result = _run(lambda: svd3d.generate_video(image, output=out, **options))
    t = result.timings
    made = f", {media.prompt_image_path(out)}" if result.prompt_image is not None else ""
    click.echo(
        f"wrote {out} ({result.settings.num_frames} frames, {result.settings.width}x{result.settings.height}){made} "
        f"and {media.run_json_path(out)} in {sum(t.values()):.1f} s (sampling {t.get('sample', 0):.1f} s)"
    )


def _recon_options(fn):
    """Options shared by `svd3d recon` and the mesh stage of `svd3d orbit`."""
    options = [
        click.option(
            "--method",
            type=click.Choice(["field", "hull", "nerfacto"]),
            default=defaults.RECON_METHOD,
            show_default=True,
            help="field: radiance-field fit (best); hull: visual hull only (fast, no concavities); "
            "nerfacto: nerfstudio (pip install 'svd3d[nerfstudio]', GPU).",
        ),  # fmt: skip
        click.option(
            "--format",
            "formats",
            default=defaults.MESH_FORMATS,
            show_default=True,
            help="Mesh formats, comma-separated: glb,obj,ply,stl.",
        ),  # fmt: skip
        click.option(
            "--faces",
            default=defaults.FACES,
            show_default=True,
            help="Face budget: auto (20000, fewer for views under 100 px: 8000 at 64 px), a number, or mobile (5000), "
            "default (20000), hero (50000).",
        ),  # fmt: skip
        click.option(
            "--texture",
            default=defaults.TEXTURE,
            show_default=True,
            help="Texture size in pixels (a power of two), or auto: up to 1024, no more than the views hold.",
        ),
        click.option("--no-uv", is_flag=True, help="Vertex colours instead of a UV texture."),
        click.option(
            "--height", type=float, default=None, help="Scale the asset to this height in metres (origin at its base)."
        ),
        click.option(
            "--iterations", type=int, default=None, help="nerfacto training iterations [5000; required on the CPU]."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _api_names(options: dict) -> dict:
    """A command's options (or a manifest line's) as the API's keyword arguments: the negative flags --no-uv and
    --no-mesh become `uv` and `mesh`."""
    flags = {"no_uv": "uv", "no_mesh": "mesh"}
    return {flags.get(k, k): (not v if k in flags else v) for k, v in options.items()}


def _split_mesh_options(options: dict) -> tuple[dict, dict]:
    """(the orbit's own options, the mesh stage's) out of `svd3d orbit`'s options in the API's names."""
    mesh = {k: v for k, v in options.items() if k in _MESH_OPTIONS}
    return {k: v for k, v in options.items() if k not in mesh}, mesh


_MESH_OPTIONS = ("method", "formats", "faces", "texture", "uv", "height", "iterations")  # reconstruct's


def _mesh_summary(result) -> str:
    q = result.report["quality"]
    t = result.report["timings_s"]
    names = ", ".join(Path(f).name for f in result.files)
    return (
        f"{names} ({result.report['mesh']['faces']} faces, silhouette IoU {q['silhouette_iou_mean']:.3f}, "
        f"view PSNR {q['view_psnr_mean_db']:.1f} dB) in {sum(t.values()):.1f} s"
    )


def _degrees(ctx, param, value):
    """'10,20,-5' -> [10.0, 20.0, -5.0]."""
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated degrees like 10,10,20, got {value!r}") from None


def _pair(ctx, param, value):
    """'0.7,0.9' -> (0.7, 0.9)."""
    if value is None:
        return None
    numbers = _degrees(ctx, param, value)
    if len(numbers) != 2:
        raise click.BadParameter(f"expected two comma-separated numbers LOW,HIGH like 0.7,0.9, got {value!r}")
    return tuple(numbers)


def _square(ctx, param, value):
    """--size 576 or 576x576 (orbit views are square)."""
    if value is None:
        return None
    try:
        width, height = parse_size(value if "x" in value.lower() else f"{value}x{value}")
    except SVD3DError as err:
        raise click.BadParameter(str(err)) from None
    if width != height:
        raise click.BadParameter(f"orbit views are square, got {width}x{height}; use e.g. --size {width}")
    return width


@main.command()
@click.argument("inputs", nargs=-1, metavar="[IMAGE...]", type=click.Path(path_type=Path))
@_text_options(defaults.T2I_ORBIT_SUFFIX, ", so that it asks for one object that svd3d can find")
@_model
@click.option("--frames", type=int, default=None, help="Views around the object [21].")
@click.option("--steps", type=int, default=None, help="Sampling steps [50].")
@click.option(
    "--seed", type=int, default=defaults.SEED, show_default=True, help="Random seed (noise is drawn on the CPU)."
)
@click.option("--size", callback=_square, default=None, help="View size in pixels, a multiple of 8 [576].")
@click.option("--min-guidance", type=float, default=None, help="Guidance next to the input view [1.0].")
@click.option("--max-guidance", type=float, default=None, help="Guidance behind the object [2.5].")
@click.option("--orbit", type=click.Choice(["auto", "static", "dynamic"]), default=defaults.ORBIT, show_default=True,
              help="static: one elevation; dynamic: a smooth elevation wobble (sees top and bottom; SV3D_p); auto: "
              "dynamic when the views are meshed and the model takes cameras, else static.")  # fmt: skip
@click.option("--elevation", type=float, default=defaults.ELEVATION, show_default=True,
              help="Camera elevation of the photo, degrees above the object's equator.")  # fmt: skip
@click.option("--elevations", callback=_degrees, default=None, help="Custom orbit: elevations, e.g. 10,10,20 (SV3D_p).")
@click.option("--azimuths", callback=_degrees, default=None,
              help="Custom orbit: azimuths incl. the input view 0, e.g. 0,120,240 (SV3D_p).")  # fmt: skip
@click.option("--object-fraction", type=float, default=defaults.OBJECT_FRACTION, show_default=True,
              help="Size of the object's larger side as a fraction of the view.")  # fmt: skip
@click.option("--decode-chunk", type=int, default=None, help="Frames decoded at once [min(frames, 14)].")
@_dtype
@_device
@click.option("--offload", is_flag=True, help="Keep only the active network on the GPU (least memory, slower).")
@_config
@_lora_options
@click.option("--no-mesh", is_flag=True, help="Stop after the views (no reconstruction).")
@_recon_options
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output folder [out/<image name>, or out/<the prompt's first words>]; with several inputs the "
                   "folder of their folders [out].")  # fmt: skip
def orbit(inputs: tuple[Path, ...], output: Path | None, no_mesh: bool, **options) -> None:
    """Generate views all around the object in IMAGE, with their true cameras (SV3D_u / SV3D_p).

    Writes a folder: input.png (the preprocessed conditioning image), frames/000.png... (000 is the input view,
    then increasing azimuth: the camera turns to its own right), orbit.mp4, transforms.json (nerfstudio
    cameras), run.json, then reconstructs the object (as `svd3d recon` does): mesh.glb, preview.png (views and
    mesh renders), recon.json. --no-mesh stops after the views.

    From text: --prompt "..." --t2i-model PATH_OR_HUB_ID (no IMAGE) makes the image first with a diffusers
    text-to-image model (the prompt + --t2i-suffix, which asks for one object on a plain white background),
    writes it as prompt.png, and preprocesses it as a photo: text -> image -> views -> mesh.

    Many inputs: several images, a folder of them, a quoted glob pattern or a .txt / .jsonl manifest (per-item
    options: {"input": "chair.png", "seed": 3, "elevation": 20}) make a batch: each gets ROOT/<name>/ under
    -o ROOT, every item is recorded in ROOT/results.jsonl, a rerun skips finished items, the model is loaded
    once; exit code 1 when some item failed. Under torchrun / accelerate launch each process takes its share.
    """
    if inputs and _is_batch(inputs, "orbit"):
        _batch("orbit", inputs, output, {**_batch_options(options), "no_mesh": no_mesh})
        return
    image = inputs[0] if inputs else None
    out = output or Path("out") / (image.stem if image is not None else _prompt_stem(options["prompt"]))
    views, recon = _split_mesh_options(_api_names(options))
    if no_mesh:
        result, mesh = _run(lambda: svd3d.generate_orbit(image, output=out, **views)), None
    else:
        asset = _run(lambda: svd3d.generate_asset(image, output=out, recon=recon, **views))
        result, mesh = asset.views, asset.mesh
    t = result.timings
    source = f" in {media.PROMPT_IMAGE}, made from the prompt" if result.prompt_image is not None else ""
    click.echo(
        f"wrote {out}/ ({result.settings.num_frames} {result.settings.orbit} views at {result.settings.size}px, "
        f"object found by {result.run['preprocess']['method']}{source}) in {sum(t.values()):.1f} s "
        f"(sampling {t.get('sample', 0):.1f} s)"
    )
    if mesh is not None:
        click.echo(f"wrote {_mesh_summary(mesh)}")


@main.command()
@click.argument("folders", nargs=-1, required=True, metavar="FOLDER...", type=click.Path(path_type=Path))
@_recon_options
@_device
@click.option("--seed", type=int, default=defaults.RECON_SEED, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output folder [FOLDER]; with several inputs the folder of their mesh folders [out].")  # fmt: skip
def recon(folders: tuple[Path, ...], output: Path | None, **options) -> None:
    """Reconstruct a textured mesh from the posed views in FOLDER (transforms.json + images, RGBA or on white):
    an `svd3d orbit` or `svd3d render` output, or any nerfstudio folder of an object orbit.

    Writes mesh.glb (or --format), preview.png (views beside renders of the mesh) and recon.json (settings,
    timings, the azimuth-direction check, silhouette IoU of the mesh in every view).

    Many inputs: several folders, a folder of view folders (e.g. a batch of `svd3d orbit --no-mesh`), a quoted glob
    or a manifest make a batch: each mesh goes to ROOT/<name>/ under -o ROOT, recorded in ROOT/results.jsonl.
    """
    if _is_batch(folders, "recon"):
        _batch("recon", folders, output, options)
        return
    folder = folders[0]
    result = _run(lambda: svd3d.reconstruct(folder, output=output, **_api_names(options)))
    click.echo(f"wrote {_mesh_summary(result)}")


# ---------------------------------------------------------------------------------------------------------------
# Many inputs: svd3d.batch runs them; these helpers parse the per-item options and name each command's job.
# ---------------------------------------------------------------------------------------------------------------

# one model, one device and one output format serve the whole batch: a manifest line cannot change them; nor can it
# start an item from text (a batch's items are its inputs)
_BATCH_WIDE = {"model", "config", "dtype", "device", "offload", "forward_chunking", "fmt", "output", *TEXT_OPTIONS}


def _is_batch(inputs: tuple[Path, ...], kind: str) -> bool:
    return batch.is_batch([str(p) for p in inputs], kind)


def _item_params(command: click.Command) -> dict[str, click.Parameter]:
    """The keys a .jsonl manifest line may set, each with the option it sets: the option's name and its long flag
    with '_' for '-' (`no_mesh`, `format` for --format)."""
    keys = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in _BATCH_WIDE:
            for key in [param.name, *(o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--"))]:
                keys[key] = param
    return keys


def _item_settings(ctx: click.Context, params: dict, item: batch.Item) -> dict:
    """A manifest line's options converted and checked as the command line's are (`"size": 64`, `"orbit": ...`),
    in the API's names."""
    settings = {}
    for key, value in item.settings.items():
        try:
            settings[params[key].name] = params[key].process_value(ctx, value)
        except click.BadParameter as err:
            raise SVD3DError(f"{item.source}: {key}: {err.format_message()}") from None
    return _api_names(settings)


def _batch(kind: str, inputs, output: Path | None, options: dict, fmt: str | None = None) -> None:
    """Run a batch (svd3d.run_batch) under -o ROOT [out]; print one line per process; exit 1 when some item failed
    (2, as always, when the batch itself cannot start: a bad manifest, an unknown option value)."""
    ctx = click.get_current_context()
    params = _item_params(ctx.command)
    top = ctx.find_root().params
    if not top.get("verbose") and not top.get("quiet"):
        logging.getLogger("svd3d").setLevel(logging.WARNING)  # the bar shows progress; -v adds each item's stages
    root = output or Path("out")
    rank = batch.Rank.from_env()
    left = f"finished items are recorded in {root / batch.RESULTS}, the one in flight left nothing; rerun to resume"
    summary = _run(
        lambda: svd3d.run_batch(
            kind, list(inputs), output, options=_api_names(options), fmt=fmt, allowed=set(params),
            item_settings=lambda item: _item_settings(ctx, params, item), progress=not top.get("quiet"),
        ),
        left=left,
    )  # fmt: skip
    who = f"rank {rank.rank}/{rank.world_size}: " if rank.world_size > 1 else ""
    done = len(summary.records)
    click.echo(f"{who}{done} item(s): {summary.ok} ok, {summary.skipped} skipped (finished earlier), "
               f"{summary.failed} failed; results in {summary.results}")  # fmt: skip
    if summary.failed:
        sys.exit(1)


def _evaluation(evaluate, json_out: Path | None, plot: Path | None = None) -> None:
    """Run an evaluation and print its table; with --json also write every number there, with --plot a picture of
    them (both files are checked before the evaluation, not after it)."""
    _run(_check_evaluation_files, json_out, plot)
    result = _run(evaluate)
    click.echo(result.table())
    if json_out is not None:
        _run(result.write_json, json_out)
        click.echo(f"wrote {json_out}")
    if plot is not None:
        _run(result.write_plot, plot)
        click.echo(f"wrote {plot}")


def _check_evaluation_files(json_out: Path | None, plot: Path | None) -> None:
    if json_out is not None:
        check_file_replaceable(json_out)
    if plot is not None:
        check_plot(plot)
        if json_out is not None and json_out.resolve() == plot.resolve():
            raise SVD3DError(f"--json and --plot both name {plot}; give each its own file")


_plot = click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help='Also draw the results in this PNG (needs matplotlib: pip install -e ".[plot]").',
)  # fmt: skip


@main.group("eval")
def evaluate() -> None:
    """Measure results: generated orbit views and reconstructed meshes against ground truth."""


@evaluate.command("recon")
@click.argument("pred", type=click.Path(path_type=Path))
@click.argument("gt", type=click.Path(path_type=Path))
@click.option("--tau", type=float, default=0.01, show_default=True, help="F-score distance threshold.")
@click.option("--samples", type=int, default=50000, show_default=True, help="Surface samples per mesh.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Volume IoU grid resolution.")
@click.option("--same-frame", is_flag=True, help="The meshes share a frame: do not normalise them.")
def eval_recon(pred: Path, gt: Path, tau: float, samples: int, resolution: int, same_frame: bool) -> None:
    """Compare a reconstructed mesh PRED with a ground-truth mesh GT: Chamfer, F-score, volume IoU."""

    scores = _run(lambda: svd3d.evaluate_mesh(pred, gt, same_frame=same_frame, tau=tau, samples=samples,
                                              resolution=resolution))  # fmt: skip
    click.echo(f"chamfer {scores.chamfer:.5f}  f-score@{scores.tau:g} {scores.f_score:.4f} "
               f"(precision {scores.precision:.4f}, recall {scores.recall:.4f})  volume IoU {scores.volume_iou:.4f}  "
               f"normal consistency {scores.normal_consistency:.4f}")  # fmt: skip
    click.echo(f"protocol: {scores.protocol}")


@evaluate.command("orbit")
@_model
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Orbit dataset folder: manifest.json (kind 'orbit'), frames.npy, elevations.npy, azimuths.npy.")  # fmt: skip
@click.option("--family", "families", multiple=True, type=click.Choice(["procedural", "held-out", "meshes"]),
              help="Also (or instead) evaluate on a family whose inputs go through svd3d orbit's preprocessing: "
                   "'procedural' (the bundled generator's kind), 'held-out' (kinds no training run makes), "
                   "'meshes' (--meshes). Repeatable; the sets are compared side by side.")  # fmt: skip
@click.option("--meshes", type=click.Path(path_type=Path), default=None,
              help="Folder of mesh files for the 'meshes' family (e.g. the bench meshes); implies --family meshes.")  # fmt: skip
@click.option("--objects", type=int, default=None,
              help="Evaluate the first K samples (orbits) of the dataset / each family [all; families: 32, meshes: "
                   "2 per mesh].")  # fmt: skip
@click.option("--steps", type=int, default=None, help="Sampling steps [model default].")
@click.option("--seed", type=int, default=defaults.EVAL_SEED, show_default=True,
              help="Seed of object 0; object i uses seed + i.")  # fmt: skip
@click.option("--family-seed", type=int, default=defaults.EVAL_FAMILY_SEED, show_default=True,
              help="Seed the families' objects are drawn from.")  # fmt: skip
@_dtype
@_device
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every number (means, per object, settings, protocol) to this JSON file.")  # fmt: skip
@_plot
def eval_orbit(model: str | None, data: Path | None, families: tuple[str, ...], meshes: Path | None,
               family_seed: int, json_out: Path | None, plot: Path | None, **options) -> None:  # fmt: skip
    """Generate each object of an orbit dataset from its input view at the dataset's cameras and score views 1..T-1
    against the ground truth (PSNR, SSIM, LPIPS where installed, mask IoU), beside the repeat-input and mean-image
    baselines. Prints a markdown table.

    --family makes the dataset instead, at the model's size: pictures of objects taken by other cameras, off centre,
    on plain backgrounds, framed by svd3d orbit's own preprocessing; 'held-out' holds kinds no training run makes
    (star prisms, trefoil knots, pastel colours, a light from the right). Several sets print side by side."""
    if data is not None and not families and meshes is None:  # one dataset: its own table, as always
        _evaluation(lambda: svd3d.evaluate_orbit(model, data, **options), json_out, plot)
        return
    _evaluation(lambda: svd3d.evaluate_families(model, families, data=data, meshes=meshes, family_seed=family_seed,
                                                **options), json_out, plot)  # fmt: skip


@evaluate.command("asset")
@_model
@click.option("--objects", type=int, default=None, help="Held-out procedural objects [8].")
@click.option("--seed", type=int, default=None,
              help="Procedural seed of the objects (object i's orbit is generated with seed + i) [777, held out].")  # fmt: skip
@click.option("--orbit", type=click.Choice(["static", "dynamic"]), default=None,
              help="Which of each object's dataset orbits to generate [the one svd3d orbit meshes: dynamic for a "
              "model that takes cameras, else static].")  # fmt: skip
@click.option("--steps", type=int, default=None, help="Sampling steps [model default].")
@click.option("--faces", type=int, default=None, help="Face budget of the reconstructed meshes [5000].")
@click.option("--family", type=click.Choice(["procedural", "held-out"]), default=None,
              help="Which objects: the bundled generator's kind, or the held-out family of svd3d eval orbit (kinds "
              "no training run makes, input views through svd3d orbit's preprocessing) [procedural].")  # fmt: skip
@_dtype
@_device
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every number (means, per object, settings, protocol) to this JSON file.")  # fmt: skip
@_plot
def eval_asset(model: str | None, json_out: Path | None, plot: Path | None, **options) -> None:
    """Generate the orbit of each held-out procedural object from its input view, reconstruct it (field and hull)
    and score the meshes against the true one (Chamfer, F-score, volume IoU, normal consistency), beside the field
    on ground-truth renders of the same cameras (the ceiling). Prints a markdown table."""
    given = {k: v for k, v in options.items() if v is not None}  # the API's signature holds the defaults
    _evaluation(lambda: svd3d.evaluate_asset(model, **given), json_out, plot)


@evaluate.command("video")
@_model
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Clip dataset folder: manifest.json (kind 'clip'), frames.npy, fps.npy, motion.npy.")  # fmt: skip
@click.option("--clips", type=int, default=None, help="Evaluate the first K clips [all].")
@click.option("--steps", type=int, default=None, help="Sampling steps [model default].")
@click.option("--seed", type=int, default=defaults.EVAL_SEED, show_default=True,
              help="Seed of clip 0; clip i uses seed + i.")  # fmt: skip
@_dtype
@_device
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every number (means, per clip, settings, protocol) to this JSON file.")  # fmt: skip
@_plot
def eval_video(model: str | None, data: Path, json_out: Path | None, plot: Path | None, **options) -> None:
    """Animate the first frame of each clip of a clip dataset with the clip's fps and motion bucket and score
    frames 1..T-1 against the real ones (PSNR, SSIM) beside the repeat-input and mean-image baselines, plus how
    close frame 0 stays to the input and how well the made motion follows the motion bucket. Prints a table."""
    _evaluation(lambda: svd3d.evaluate_video(model, data, **options), json_out, plot)


@evaluate.command("camera")
@_model
@click.option("--lora", "loras", multiple=True, metavar="ADAPTER[:SCALE]",
              help="A LoRA adapter to measure against the base model (repeatable; each is measured alone).")  # fmt: skip
@click.option("--images", type=int, default=16, show_default=True, help="Held-out input pictures.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Use the first frames of this clip dataset's clips instead of generated held-out pictures.")  # fmt: skip
@click.option("--steps", type=int, default=None, help="Sampling steps [model default].")
@click.option("--seed", type=int, default=defaults.EVAL_SEED, show_default=True,
              help="Seed of input 0; input i uses seed + i (the same in every variant).")  # fmt: skip
@_dtype
@_device
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every number (means, per clip, settings, protocol) to this JSON file.")  # fmt: skip
def eval_camera(model: str | None, json_out: Path | None, **options) -> None:
    """Measure the camera motion of a video model's clips without and with each --lora adapter on held-out
    pictures: the dense optical flow's mean motion x / y and divergence (zoom), and how often each adapter's clips
    move as it says (pan, zoom, static). Needs OpenCV: pip install 'svd3d[flow]'. Prints a table."""
    _evaluation(lambda: svd3d.evaluate_camera(model, **options), json_out)


@main.command()
@click.argument("mesh", type=click.Path(path_type=Path))
@click.option("--orbit", type=click.Choice(["static", "dynamic"]), default=defaults.RENDER_ORBIT, show_default=True)
@click.option("--frames", type=int, default=defaults.RENDER_FRAMES, show_default=True, help="Views around the mesh.")
@click.option("--elevation", type=float, default=defaults.ELEVATION, show_default=True,
              help="Camera elevation, degrees.")  # fmt: skip
@click.option("--amplitude", type=float, default=defaults.DYNAMIC_AMPLITUDE, show_default=True,
              help="Dynamic orbit: largest elevation swing, degrees (e.g. 70 with --elevation 0 to see top and bottom).")  # fmt: skip
@click.option("--seed", type=int, default=defaults.RENDER_SEED, show_default=True,
              help="Dynamic orbit: seed of the wobble and jitter.")  # fmt: skip
@click.option("--elevations", callback=_degrees, default=None, help="Custom orbit: elevations, e.g. 10,10,20.")
@click.option("--azimuths", callback=_degrees, default=None, help="Custom orbit: azimuths incl. 0, e.g. 0,120,240.")
@click.option("--size", callback=_square, default=str(defaults.RENDER_SIZE), show_default=True,
              help="View size in pixels.")  # fmt: skip
@click.option("--fit-to", type=click.Choice(["sphere", "cube"]), default=defaults.RENDER_FIT_TO, show_default=True,
              help="Normalise the mesh so its bounding sphere (never leaves the frame) or box fits [-0.5, 0.5]^3.")  # fmt: skip
@click.option("--depth", type=click.Choice(["none", "png16", "npy"]), default="none", show_default=True,
              help="Also write depth: 16-bit PNG millimetres or float32 .npy metres.")  # fmt: skip
@click.option("--normals", is_flag=True, help="Also write world-space normals.")
@click.option("--supersample", type=int, default=defaults.SUPERSAMPLE, show_default=True,
              help="Antialiasing rays per pixel side at edges.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Output folder [out/<mesh>-views].")
def render(mesh: Path, output: Path | None, **options) -> None:
    """Render MESH (GLB, glTF, OBJ, PLY, STL) along an orbit into a nerfstudio folder: images/ (RGBA on white),
    transforms.json (the same cameras as `svd3d orbit`), optional depth/ and normals/."""
    result = _run(lambda: svd3d.render_orbit(mesh, output, **options))
    click.echo(f"wrote {result.output}/ ({result.views} {result.orbit} views at {options['size']}px) "
               f"in {result.seconds:.1f} s")  # fmt: skip


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@_config
@click.option(
    "--dtype", default="float32", show_default=True, help="Weights dtype to write: float32, float16, bfloat16."
)
def convert(checkpoint: Path, out_dir: Path, config: str | None, dtype: str) -> None:
    """Convert an sgm single-file CHECKPOINT (svd, svd_xt, sv3d_u, sv3d_p) to a diffusers-format OUT_DIR.

    SVD / SVD-XT folders load in diffusers' StableVideoDiffusionPipeline as they are; SV3D folders record
    svd3d's per-frame UNet and load with svd3d. CHECKPOINT may also be a diffusers folder (e.g. a training run's
    model/), to rewrite it at another --dtype.
    """
    model = _run(lambda: svd3d.convert_checkpoint(checkpoint, out_dir, config=config, dtype=dtype))
    click.echo(f"wrote {out_dir} ({model.info.name}, {model.info.kind} model)")


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Run folder: checkpoints/, model/ (the trained model), log.jsonl, run.json. An earlier run of the "
                   "recipe there is resumed from its newest checkpoint.")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set train.steps=100 --set data.count=64 (repeatable).")  # fmt: skip
@click.option("--device", default=defaults.DEVICE, show_default=True,
              help="auto, cpu or cuda (under accelerate: its own).")  # fmt: skip
@click.option(
    "--stop-after",
    type=int,
    default=None,
    help="Train at most N steps in this call, then save and stop (0: only run phases not yet done, e.g. a new "
    "train.decoder_steps, then save and export).",
)
def train(recipe: Path, output: Path, overrides: tuple[str, ...], device: str, stop_after: int | None) -> None:
    """Train a RECIPE (recipes/*.toml). One process here; N GPUs or nodes with
    `accelerate launch [--multi_gpu --num_processes N] -m svd3d train RECIPE -o RUN`."""

    result = _run(
        lambda: svd3d.train(recipe, output, overrides=overrides, device=device, stop_after=stop_after),
        left="the run keeps its last checkpoint; run the same command to resume",
    )
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    click.echo(f"trained to step {result.step} ({result.steps_per_second:.2f} steps/s{last}); "
               f"{result.model_dir.name}: {result.model_dir}")  # fmt: skip


@main.command()
@click.argument("kind", type=click.Choice(["procedural", "meshes", "clips", "videos"]))
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Dataset folder to write.")
@click.option("--count", type=int, default=None, help="procedural / clips: how many objects / clips.")
@click.option("--size", type=int, default=defaults.DATA_SIZE, show_default=True, help="Square frame size in pixels.")
@click.option("--frames", type=int, default=None, help="Frames per orbit [21] or clip [14].")
@click.option("--seed", type=int, default=defaults.DATA_SEED, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True,
              help="meshes: processes rendering at once on this machine, sharing its cores.")  # fmt: skip
@click.option("--light", type=click.Choice(["headlight", "varied"]), default=None,
              help="procedural / meshes: the renderer's headlight for every orbit, or a seeded camera-fixed light "
                   "per orbit (direction, intensity, ambient) [headlight].")  # fmt: skip
@click.option("--material", type=click.Choice(["matte", "varied"]), default=None,
              help="procedural / meshes: matte, or half the objects glossy [matte].")  # fmt: skip
@click.option("--framing", type=click.Choice(["sphere", "input"]), default=None,
              help="procedural / meshes: the object inside every view (its bounding sphere fits), or each orbit's "
                   "input view framed as `svd3d orbit` frames a photo (--object-fraction) [sphere].")  # fmt: skip
@click.option("--object-fraction", "object_fraction", callback=_pair, default=None, metavar="LOW,HIGH",
              help="--framing input: the input view's object size as a fraction of the frame, drawn per orbit "
                   "[0.85,0.85].")  # fmt: skip
@click.option("--elevation-range", "elevation_range", callback=_pair, default=None, metavar="LOW,HIGH",
              help="procedural / meshes: base elevations of the orbits, degrees [-5,30].")  # fmt: skip
@click.option("--shapes", type=click.Choice(["basic", "varied"]), default=None,
              help="procedural: tiny-orbit's objects, or every training kind (more primitives, thin parts, "
                   "deformations, dots and gradients, random colours, up to 6 parts) [basic].")  # fmt: skip
@click.option("--camera", type=click.Choice(["any", "static", "pan-left", "pan-right", "pan-up", "pan-down",
                                             "zoom-in", "zoom-out"]), default="any", show_default=True,
              help="clips: restrict the camera's motion to one kind (data for camera-motion LoRAs).")  # fmt: skip
def data(kind: str, source: Path | None, output: Path, **options) -> None:
    """Build a training dataset: `procedural` objects or `meshes` from a SOURCE folder (GLB/OBJ/PLY/STL) rendered
    along SV3D orbits; synthetic `clips`; or `videos` cut from a SOURCE folder of clips.

    Orbit datasets show objects as tiny-orbit's data does unless --light, --material, --framing, --object-fraction
    or --elevation-range (and for procedural objects --shapes) ask for variety; none of them ever makes a kind of
    the held-out family (`svd3d eval orbit --family held-out`).

    `meshes` resumes where an interrupted build stopped, lists meshes that cannot be loaded (never fatal), renders
    with --workers processes, and under `torchrun` / `accelerate launch -m svd3d data meshes ...` each process
    takes its share of the meshes; the last to finish assembles the dataset."""
    left = "finished meshes are kept beside it; run the same command to resume" if kind == "meshes" else NOTHING_WRITTEN
    names = ("light", "material", "framing", "object_fraction", "elevation_range")
    look = {k: v for k in names if (v := options.pop(k)) is not None}
    result = _run(lambda: svd3d.build_dataset(kind, output, source=source, look=look or None, **options), left=left)
    if result.data is None:
        click.echo(f"rank {result.rank.rank}/{result.rank.world_size}: its meshes are rendered; the last rank to "
                   f"finish writes {output}")  # fmt: skip
        return
    dataset = result.data
    n, t, h, w = dataset.frames.shape[:4]
    what = f"{len(dataset.objects())} objects, {n} orbits" if kind in ("procedural", "meshes") else f"{n} clips"
    skipped = dataset.source.get("skipped") or []
    click.echo(f"wrote {result.output} ({what} x {t} frames at {w}x{h})")
    for item in skipped:
        click.echo(f"skipped {item['path']}: {item['error']}")


def _graphical() -> bool:
    """Whether a browser can show a window here: on Linux without a display webbrowser would pick a text browser."""
    import os

    return sys.platform in ("darwin", "win32") or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    )


@main.command()
@click.argument("videos", metavar="VIDEOS_DIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Folder for the kept clips (MP4) and curation.json; `svd3d data videos` reads it.")  # fmt: skip
@click.option("--cut-threshold", type=float, default=defaults.CURATE_CUT_THRESHOLD, show_default=True,
              help="Colour-histogram distance (0..1) between consecutive frames that makes a cut.")  # fmt: skip
@click.option("--min-motion", type=float, default=defaults.CURATE_MIN_MOTION, show_default=True,
              help="Drop clips moving less (static): mean flow, px/frame at a 128 px shorter side.")  # fmt: skip
@click.option("--max-motion", type=float, default=defaults.CURATE_MAX_MOTION, show_default=True,
              help="Drop clips moving more (too fast), px/frame at a 128 px shorter side.")  # fmt: skip
@click.option("--max-chaos", type=float, default=defaults.CURATE_MAX_CHAOS, show_default=True,
              help="Drop clips whose flow changes more erratically from frame to frame (0 steady, ~1.3 random).")  # fmt: skip
@click.option("--min-frames", type=int, default=defaults.CURATE_MIN_FRAMES, show_default=True,
              help="Drop clips with fewer frames.")  # fmt: skip
@click.option("--flow", type=click.Choice(["dis", "farneback"]), default=defaults.CURATE_FLOW, show_default=True,
              help="Dense optical flow (OpenCV): DIS, or Farnebäck (misses motion in low-contrast regions).")  # fmt: skip
def curate(videos: Path, output: Path, **options) -> None:
    """Curate the videos in VIDEOS_DIR (MP4, WebM, MOV, MKV, AVI, GIF, WebP, folders of numbered frames) into
    training clips: split each at its cuts (and blank frames: fades, black screens), measure each clip's motion
    with dense optical flow, drop the clips that are too short, static, chaotic or too fast, and write the kept
    clips and curation.json (every clip, kept or dropped, its span, scores and reason) into -o CLIPS_DIR.
    `svd3d data videos CLIPS_DIR` builds a dataset of the kept clips. Needs OpenCV: pip install 'svd3d[curate]'."""
    result = _run(lambda: svd3d.curate_videos(videos, output, **options))
    for line in result.report():
        click.echo(line)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on localhost (0: a free one).")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Only print the page's address; do not open a browser.")
def view(folder: Path, port: int, no_browser: bool) -> None:
    """Serve FOLDER (an svd3d output: orbit, recon, render, a video's frames, a batch root) on localhost and open
    its index.html in a browser. The page also works opened straight from disk; serving it loads the mesh file
    itself instead of the copy embedded in the page. Ctrl-C stops the server."""
    import threading
    import webbrowser

    try:
        server = viewer.make_server(folder, port)
    except SVD3DError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    url = f"http://127.0.0.1:{server.server_address[1]}/{viewer.INDEX}"
    click.echo(f"serving {folder} at {url} (Ctrl-C stops)")

    if not no_browser and _graphical():
        threading.Timer(0.2, webbrowser.open, (url,)).start()
    with signals.caught():
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            server.server_close()


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to serve on (0: a free one).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; anyone who reaches it can run jobs).")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Only print the page's address; do not open a browser.")
@click.option("--model", "-m", "models", multiple=True,
              help="Also offer this model (path, folder or hub id) beside the registry's orbit models (repeatable).")  # fmt: skip
@_dtype
@_device
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder for the requests' outputs, one new folder each [a new temporary folder].")  # fmt: skip
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Jobs run at once; the queue holds the rest (one model serves one job at a time).")  # fmt: skip
def app(port: int, host: str, no_browser: bool, models: tuple[str, ...], dtype: str, device: str,
        output: Path | None, concurrency: int) -> None:  # fmt: skip
    """A local web app for image -> 3D asset: upload or pick an image, choose model / orbit / steps / seed / face
    budget, watch the views, the turntable and the textured mesh, download GLB, OBJ and the views.

    Needs the optional extra: pip install -e ".[app]". Runs the bundled models offline (the GPU when there is one);
    each model is loaded once; each request writes its own folder under -o. Ctrl-C stops it."""
    running = _run(lambda: web_app.launch(host=host, port=port, root=output, extra_models=models, device=device,
                                          dtype=dtype, concurrency=concurrency,
                                          browser=not no_browser and _graphical()))  # fmt: skip
    click.echo(f"svd3d app at {running.url} (outputs in {running.root}; Ctrl-C stops)")

    with signals.caught():
        try:
            running.wait()
        except KeyboardInterrupt:
            click.echo("stopped")


@main.command("models")
def list_models() -> None:
    """List the model names --model accepts besides paths and hub ids."""
    for entry in _run(svd3d.model_entries).values():
        click.echo(f"{entry.name:20s} {entry.kind:6s} {entry.description}")
    for name, folder in _run(svd3d.lora_entries).items():
        click.echo(f"{name:20s} {'lora':6s} bundled LoRA adapter (--lora {name}), {folder}")
    click.echo("also: a diffusers folder, an sgm .safetensors (svd, svd_xt, sv3d_u, sv3d_p) or a hub id")


if __name__ == "__main__":
    main()
