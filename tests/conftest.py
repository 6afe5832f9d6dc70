"""Shared fixtures: tiny random models built in memory, the sgm parity fixtures, a test image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SGM_FIXTURES = Path(os.environ.get("SVD3D_SGM_FIXTURES", REPO.parent / "shared" / "fixtures" / "sgm"))


def sgm_fixture(name: str) -> Path:
    """Path of a file in the sgm parity fixtures; skips the test (with the reason) when they are absent."""
    path = SGM_FIXTURES / name
    if not path.is_file():
        pytest.skip(f"sgm parity fixtures not found at {SGM_FIXTURES} (set SVD3D_SGM_FIXTURES)")
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """Tests never reach the network or the user's hub cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))


@pytest.fixture(scope="session")
def tiny_video_model():
    from svd3d.models.tiny import tiny_random_model

    return tiny_random_model("video", seed=0)


@pytest.fixture(scope="session")
def tiny_orbit_model():
    from svd3d.models.tiny import tiny_random_model

    return tiny_random_model("orbit", seed=0)


def float32_reorder_bound(reference, reduction: int, ulps: float = 2.0) -> float:
    """The largest difference two float32 implementations of the same real-arithmetic function may show.

    Two implementations that are equal in real arithmetic (a fused kernel against a plain one, one summation
    order against another, another CPU's SIMD width) still round differently: a float32 sum of `reduction`
    terms carries a rounding error of at most about `reduction` units of float32 epsilon relative to its
    magnitude, and a network's later layers carry that error on at roughly the output's scale. So the bound is
    `ulps * reduction * eps * max|reference|`: a few float32 ulps per reduced term, on the output's scale.
    Bit-identical reruns of the *same* code are a different promise and are compared exactly elsewhere.
    """
    import torch

    scale = float(torch.as_tensor(reference).abs().max())
    return ulps * reduction * torch.finfo(torch.float32).eps * scale


def make_test_image(width: int = 96, height: int = 72, mode: str = "RGB") -> Image.Image:
    """A deterministic picture with structure (gradient, disc, bar), so crops and rotations are checkable."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width * 255, y / height * 255, np.full_like(x, 128.0)], -1)
    disc = (x - width * 0.3) ** 2 + (y - height * 0.5) ** 2 < (min(width, height) * 0.2) ** 2
    rgb[disc] = (230, 40, 40)
    rgb[: height // 8] = (20, 20, 200)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return img.convert(mode) if mode != "RGB" else img


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "input.png"
    make_test_image().save(path)
    return path
