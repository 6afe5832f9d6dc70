"""Hub ids: real snapshot_download code, a clear error offline, and the cached snapshot loaded like a folder."""

from __future__ import annotations

import pytest
import torch

from svd3d.errors import SVD3DError
from svd3d.models import load_model
from svd3d.models.diffusers_io import save_diffusers


def test_offline_error_names_local_alternative():
    with pytest.raises(SVD3DError) as err:
        load_model("stabilityai/stable-video-diffusion-img2vid-xt")
    text = str(err.value)
    assert "stabilityai/stable-video-diffusion-img2vid-xt" in text and "--model DIR" in text


def test_hub_snapshot_is_loaded(tmp_path, monkeypatch, tiny_video_model):
    import huggingface_hub

    folder = save_diffusers(tiny_video_model, tmp_path / "snap")
    asked = {}

    def fake_snapshot(repo_id, allow_patterns=None, ignore_patterns=None, **kw):
        asked.update(repo=repo_id, allow=allow_patterns, ignore=ignore_patterns)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    model = load_model("someone/tiny-svd", dtype=torch.float32)
    assert model.source == "someone/tiny-svd" and model.info.kind == "video"
    assert asked["repo"] == "someone/tiny-svd" and "*.json" in asked["allow"] and asked["ignore"]
    load_model("someone/tiny-svd", dtype=torch.float16)
    assert asked["allow"] == ["*.json", "*/*.fp16.safetensors"]
