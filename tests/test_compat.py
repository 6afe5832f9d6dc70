"""What keeps svd3d working beyond the machine it was written on: Python 3.10, and stock diffusers SVD folders
whose UNet config has other vector widths than the released models."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

RECIPE = """
[model]
kind = "video"
init = "random-tiny-video"

[data]
generate = "clips"
"""


def test_recipes_load_without_tomllib(monkeypatch, tmp_path):
    """Python 3.10 has no tomllib: svd3d reads recipes with tomli there (a dependency on 3.10). Simulated here by
    hiding tomllib, so the fallback import really runs and parses a recipe."""
    pytest.importorskip("tomli", reason="tomli is in the dev extra: pip install -e '.[dev]'")
    import svd3d.training.recipe as recipe

    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ModuleNotFoundError
    try:
        fallback = importlib.reload(recipe)
        assert fallback.tomllib.__name__ == "tomli"
        path = tmp_path / "r.toml"
        path.write_text(RECIPE)
        assert fallback.load_recipe(path).model.init == "random-tiny-video"
        with pytest.raises(fallback.SVD3DError, match="r.toml"):
            path.write_text("[model\n")
            fallback.load_recipe(path)
    finally:
        monkeypatch.undo()
        importlib.reload(recipe)
    assert recipe.tomllib.__name__ == "tomllib"


def test_stock_diffusers_folder_with_other_vector_widths(tmp_path):
    """A diffusers SVD folder with addition_time_embed_dim 32 (not the released 256) and no svd3d.json loads as
    diffusers loads it, with the widths its UNet config says, and generates a clip."""
    from diffusers import UNetSpatioTemporalConditionModel

    from svd3d.models import load_model
    from svd3d.models.diffusers_io import save_diffusers
    from svd3d.models.tiny import tiny_random_model
    from svd3d.pipelines.video import generate_video

    folder = save_diffusers(tiny_random_model("video", seed=0), tmp_path / "stock")
    (folder / "svd3d.json").unlink()  # a stock folder: nothing svd3d-specific
    config = json.loads((folder / "unet" / "config.json").read_text())
    config.update(addition_time_embed_dim=32, projection_class_embeddings_input_dim=96)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    UNetSpatioTemporalConditionModel.from_config(config).save_pretrained(folder / "unet")

    model = load_model(folder)
    assert tuple(model.info.vector_fields) == (("fps_id", 32), ("motion_bucket_id", 32), ("cond_aug", 32))
    from conftest import make_test_image

    clip = generate_video(make_test_image(), model=model, frames=2, steps=1, size=(64, 64), progress=False)
    assert clip.frames.shape == (2, 64, 64, 3)
