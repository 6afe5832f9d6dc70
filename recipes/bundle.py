"""Ship a trained run as a bundled model: how assets/models/tiny-video and assets/models/tiny-orbit were made.

    python recipes/bundle.py RUN NAME [--eval N]

1. RUN/model (the EMA weights `svd3d train` exports) is rewritten in float16 (half the bytes; svd3d loads it back
   in float32 on the CPU, and the VAE always runs in float32) into assets/models/NAME.
2. The float16 copy itself is evaluated on the first N held-out samples of RUN/held_out, which training never saw:
   `svd3d eval orbit` for orbit models, `svd3d eval video` for video models.
3. NAME/README.md, the model card: the training record (recipe, data, steps, compute, loss, from the newest
   checkpoint), the evaluation table with the command that reproduces it, the limits, and the licence.

The new folder is assembled beside the old one and swapped in only when complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "assets" / "models"

LIMITS = {
    "orbit": """\
- Its novel views beat both trivial baselines by about 1 dB PSNR (the table above; 1.05 dB on another 64 unseen
  samples, seed 777), which is a clear but modest margin: it keeps the white background, the object's size, parts
  and colours, and turns it, but box corners round off, stripes and checks turn into patches of their two colours,
  and hidden parts are smooth guesses. Its best guess of the views from the input alone (one denoising step from
  sigma 80, `recipes/denoise_probe.py`) scores 16.1 dB on held-out objects, where the VAE could draw them at
  25 dB: the model, not the decoder, is the limit, and its gains from more steps were getting small.
- It knows one world: toy objects of 1-4 primitives (spheres, boxes, cylinders, cones, capsules, tori) in flat,
  two-tone, striped or checkered colours, lit by a headlight, on white, seen from -5 to 30 degrees elevation.
  Photos of real objects (the bench photos, a chair, a shoe) come out as coloured blobs that turn: shape and colour
  survive roughly, detail does not.
- 64 x 64 views: meshes reconstructed from them are coarse (about 1/40 of the object per pixel) and their
  textures soft. Hidden sides are guessed from the training distribution, and fine patterns on them drift.
- Its image encoder is a frozen 0.1 M-parameter random CLIP (the real CLIP is 600 M parameters and cannot be
  bundled), so the model sees the input mostly through the VAE latents of the input view.
- For real objects use SV3D_p / SV3D_u weights (`svd3d orbit IMAGE --model sv3d_p.safetensors`).""",
    "video": """\
- It knows one world: flat-shaded 2D shapes (discs, boxes, triangles, stars) that slide, turn and pulse over soft
  gradient / stripe / checker / blob backgrounds, with camera pans and zooms, at 64 x 64 and 8 frames.
- Real photos are animated as if they were such scenes: regions drift and smear; nothing looks like real
  motion (water, people, cameras in 3D).
- Its future is a guess: clips score below a still frame on PSNR against the real continuation (the table), as
  any sampler of plausible futures does; what it controls well is how much things move (motion bucket).
- For real clips use SVD / SVD-XT weights (`svd3d video IMAGE --model svd_xt.safetensors`).""",
}


def newest_state(run: Path) -> dict:
    """The newest checkpoint's state.json. Checkpoints written before svd3d recorded compute in them (tiny-video's)
    get it from the loss log, whose `seconds` counts the same thing: every call's time, data and VAE phase included."""
    from svd3d.training.checkpoint import list_checkpoints

    checkpoints = list_checkpoints(run)
    if not checkpoints:
        sys.exit(f"{run} has no checkpoints/; train it first (svd3d train RECIPE -o {run})")
    state = json.loads((checkpoints[-1].folder / "state.json").read_text())
    if "compute_seconds" not in state:
        logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        state["compute_seconds"] = next(e["seconds"] for e in logged if e["step"] == state["step"])
        state.setdefault("loss", next(e["loss"] for e in logged if e["step"] == state["step"]))
    state.setdefault("processes", 1)
    state.setdefault("device", "cpu")
    return state


def training_card(run: Path, model, state: dict, started_from: str | None) -> str:
    """The card `svd3d train` writes, made again from the newest checkpoint (its step, compute and loss);
    `started_from` names the start model where the recipe's init was a path of this machine."""
    from svd3d.training.data import load_dataset
    from svd3d.training.loop import model_card
    from svd3d.training.recipe import recipe_from_dict

    recipe = recipe_from_dict(state["recipe"])
    if started_from:
        recipe = replace(recipe, model=replace(recipe.model, init=started_from))
    data = load_dataset(run / "data")
    if recipe.data.held_out:
        data, _ = data.split(recipe.data.held_out, seed=recipe.data.seed)
    return model_card(recipe, model, int(state["step"]), state, data)


def evaluate(folder: Path, name: str, run: Path, count: int) -> tuple[str, str, dict]:
    """(command, table, numbers) of the evaluation of the model in `folder` (to be bundled as `name`) on
    RUN/held_out."""
    from svd3d.models import load_model

    model = replace(load_model(folder), source=name)
    if model.info.kind == "orbit":
        from svd3d.eval.orbit import evaluate_orbit

        result = evaluate_orbit(model, run / "held_out", objects=count)
        command = f"svd3d eval orbit --model {name} --data RUN/held_out --objects {count}"
    else:
        from svd3d.eval.video import evaluate_video

        result = evaluate_video(model, run / "held_out", clips=count)
        command = f"svd3d eval video --model {name} --data RUN/held_out --clips {count}"
    return command, result.table().replace(str(run), "RUN"), result.to_dict()


def card(name: str, kind: str, training: str, command: str, table: str, info: list[str], history: list[str]) -> str:
    job = "orbit" if kind == "orbit" else "video"
    body = training.split("\n", 2)[2]  # drop the training card's title
    return "\n".join(
        [
            f"# {name} (bundled)",
            "",
            f"The default model of `svd3d {job}` when no `--model` is given: trained by svd3d itself on procedural "
            "data it generates, so it carries no third-party weights or images, runs offline on a CPU, and is "
            "stored in float16.",
            "",
            "## Training",
            "",
            body.strip(),
            "",
            *(
                ["The recipe above is the run's last; it changed on resume (each change logged by `svd3d train`):", ""]
                + [f"- {line}" for line in history]
                + [""]
                if history
                else []
            ),
            *(
                [
                    f"Sampling defaults set when bundling: {', '.join(info)} (chosen on a validation set of procedural "
                    "samples from another seed; the held-out set below played no part).",
                    "",
                ]
                if info
                else []
            ),
            "## Evaluation",
            "",
            f"On held-out samples the training never saw (seeded objects / clips split off before training), on "
            f"2 CPU cores: `{command}` (RUN = the training run folder).",
            "",
            "```",
            table,
            "```",
            "",
            "## Limits",
            "",
            LIMITS[kind],
            "",
            "## Licence",
            "",
            "MIT, as svd3d: the weights were trained from scratch (video) or from the bundled tiny-video (orbit) by "
            "`svd3d train` on data `svd3d data` generated.",
            "",
        ]
    )


def parse_info(item: str) -> tuple[str, object]:
    """'num_steps=25' -> ('num_steps', 25): read as `--set` values are (TOML), the key checked against ModelInfo."""
    from dataclasses import fields

    from svd3d.models.info import ModelInfo
    from svd3d.training.recipe import parse_override

    key, value = parse_override(item)
    known = [f.name for f in fields(ModelInfo)]
    if key not in known:
        sys.exit(f"--info {item!r}: give KEY=VALUE with KEY one of {', '.join(known)}")
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="training run folder (checkpoints/, model/, data/, held_out/)")
    parser.add_argument("name", help="bundled name: assets/models/NAME")
    parser.add_argument("--eval", type=int, default=64, help="held-out samples to evaluate [64]")
    parser.add_argument("--started-from", default=None, help="how the card names the model training started from")
    parser.add_argument("--history", action="append", default=[], metavar="TEXT",
                        help="a recipe change made on resume, for the card (repeatable, in order)")  # fmt: skip
    parser.add_argument("--info", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sampling default in svd3d.json, e.g. num_steps=25 (repeatable; chosen on "
                             "a validation set, never on the held-out samples the card reports)")  # fmt: skip
    args = parser.parse_args()

    from svd3d.models import load_model
    from svd3d.models.diffusers_io import save_diffusers

    run, target = args.run.resolve(), MODELS / args.name
    state = newest_state(run)
    model = load_model(run / "model", dtype=torch.float16)
    if args.info:
        model = replace(model, info=replace(model.info, **dict(parse_info(item) for item in args.info)))
    staging = MODELS.parent / f".{args.name}.staging"  # outside models/: the registry never sees it
    shutil.rmtree(staging, ignore_errors=True)
    save_diffusers(model, staging)
    try:
        training = training_card(run, model, state, args.started_from)  # parameter counts: any dtype
        command, table, numbers = evaluate(staging, args.name, run, args.eval)
        print(table)
        (staging / "README.md").write_text(
            card(args.name, model.info.kind, training, command, table, args.info, args.history)
        )
        (staging / "eval.json").write_text(json.dumps({"command": command, **numbers}, indent=2) + "\n")
        old = MODELS.parent / f".{args.name}.old"
        MODELS.mkdir(exist_ok=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"wrote {target} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
