"""The package's public face: `import svd3d` offers every job as one typed function, loads nothing heavy until a
job runs, and the README's Python example (image -> views -> GLB) works as written."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import trimesh

import svd3d
from svd3d import api, defaults
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.pipelines.orbit import choose_orbit

PUBLIC = ("generate_video", "generate_orbit", "reconstruct", "render_orbit", "export_mesh", "load_model", "train")


def test_public_names_resolve_and_are_documented():
    assert set(svd3d.__all__) >= {*PUBLIC, "generate_asset", "SVD3DError", "__version__"}
    assert set(api.__all__) <= set(svd3d.__all__)
    for name in api.__all__:
        obj = getattr(svd3d, name)
        assert obj is getattr(api, name)
        assert inspect.getdoc(obj), f"svd3d.{name} has no docstring"
    with pytest.raises(AttributeError):
        svd3d.no_such_thing  # noqa: B018


def test_import_and_help_stay_light():
    """`import svd3d` and the CLI module import neither torch nor diffusers (the jobs load them on first use), nor
    gradio or matplotlib (`svd3d app` and --plot do)."""
    code = (
        "import sys, svd3d, svd3d.cli; "
        "heavy = [m for m in ('torch', 'diffusers', 'open3d', 'trimesh', 'gradio', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_recorded_versions_import_nothing_a_job_did_not_need():
    """run.json / recon.json record diffusers' and transformers' versions; `svd3d recon` uses neither, and importing
    them only to ask cost it more than a second. The installed versions are recorded, the same as the modules'."""
    code = (
        "import sys; from importlib import metadata; from svd3d.runinfo import versions; v = versions(); "
        "assert not {'diffusers', 'transformers'} & set(sys.modules), v; "
        "assert v['diffusers'] == metadata.version('diffusers') and v['transformers'] == metadata.version('transformers'); "
        "import diffusers, transformers; assert versions() == v, (versions(), v)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_are_written_once():
    """The API's signatures and the command line's options both take svd3d.defaults' values."""
    orbit = inspect.signature(svd3d.generate_orbit).parameters
    assert orbit["seed"].default == defaults.SEED and orbit["elevation"].default == defaults.ELEVATION
    assert orbit["object_fraction"].default == defaults.OBJECT_FRACTION and orbit["orbit"].default == defaults.ORBIT
    recon = inspect.signature(svd3d.reconstruct).parameters
    assert recon["texture"].default == defaults.TEXTURE and recon["method"].default == defaults.RECON_METHOD
    options = {p.name: p.default for p in main.commands["orbit"].params}
    assert options["seed"] == defaults.SEED and options["elevation"] == defaults.ELEVATION
    assert options["object_fraction"] == defaults.OBJECT_FRACTION and options["texture"] == defaults.TEXTURE


def test_python_example_image_to_glb(tmp_path):
    """The README's "Python" section: one photo -> views and cameras -> a GLB, in a few lines."""
    asset = svd3d.generate_asset(
        "assets/examples/toy_a.png", output=tmp_path / "toy", model="random-tiny-orbit", frames=6, steps=1,
        recon={"method": "hull", "faces": 800, "texture": 64}, progress=False,
    )  # fmt: skip
    assert asset.views.frames.shape == (6, 64, 64, 3) and len(asset.views.c2w) == 6
    glb = tmp_path / "toy" / "mesh.glb"
    assert asset.mesh.files == [glb] and trimesh.load(glb).is_empty is False
    # the mesh stage ran with the views' seed and device, recorded in recon.json
    assert asset.mesh.report["settings"]["seed"] == defaults.SEED
    # views that are meshed come from the dynamic orbit (the model takes cameras); views alone from the static one
    assert asset.views.settings.orbit == "dynamic" and len(set(np.round(asset.views.elevations, 3))) > 1
    views = svd3d.generate_orbit("assets/examples/toy_a.png", output=None, model="random-tiny-orbit", frames=6,
                                 steps=1, progress=False)  # fmt: skip
    assert views.settings.orbit == "static"


def test_auto_orbit_is_dynamic_only_for_meshed_views_of_models_that_take_cameras():
    assert choose_orbit("auto", has_camera=True, meshed=True) == "dynamic"
    assert choose_orbit("auto", has_camera=True, meshed=False) == "static"
    assert choose_orbit("auto", has_camera=False, meshed=True) == "static"  # SV3D_u: no camera input
    assert choose_orbit("static", has_camera=True, meshed=True) == "static"  # asked for: kept


def test_render_evaluate_and_export(tmp_path):
    box = trimesh.creation.box((1.0, 0.6, 0.4))
    source = tmp_path / "box.ply"
    box.export(source)
    views = svd3d.render_orbit(source, tmp_path / "views", frames=4, size=32, supersample=1)
    assert (views.orbit, views.views) == ("static", 4) and (tmp_path / "views/transforms.json").is_file()
    files = svd3d.export_mesh(box, tmp_path / "box.glb", height=2.0)
    assert files == [tmp_path / "box.glb"]
    placed = trimesh.load(files[0], force="mesh")
    assert np.isclose(placed.extents[1], 2.0, atol=1e-4)  # the asset is 2 m tall: +Y is up in glTF
    same = svd3d.evaluate_mesh(source, box, same_frame=True, samples=20000, resolution=16)
    wider = svd3d.evaluate_mesh(source, box.copy().apply_scale([1.3, 1, 1]), same_frame=True, samples=20000,
                                resolution=16)  # fmt: skip
    assert same.volume_iou == 1.0 and wider.volume_iou < 0.8  # the file and the mesh in memory are the same box
    assert same.chamfer < wider.chamfer / 3 and same.normal_consistency > 0.95


def test_argument_checks_name_the_fix(tmp_path):
    with pytest.raises(SVD3DError, match="drop the SOURCE"):
        svd3d.build_dataset("procedural", tmp_path / "d", source=tmp_path)
    with pytest.raises(SVD3DError, match="needs a SOURCE"):
        svd3d.build_dataset("meshes", tmp_path / "d")
    with pytest.raises(SVD3DError, match="--stop-after"):
        svd3d.train("recipes/tiny-orbit.toml", tmp_path / "run", stop_after=-1)
    with pytest.raises(SVD3DError, match="section.key=value"):
        svd3d.train("recipes/tiny-orbit.toml", tmp_path / "run", overrides=["steps"])
    assert not (tmp_path / "d").exists() and not (tmp_path / "run").exists()
