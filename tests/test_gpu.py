"""On a CUDA device: half-precision runs stay finite and close to the CPU float32 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_test_image

from svd3d.pipelines.video import generate_video

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _need_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_video_on_cuda_matches_cpu(dtype):
    from svd3d.models.tiny import tiny_random_model

    args = dict(frames=6, steps=4, size=(64, 64), seed=4, progress=False)
    image = make_test_image(64, 64)
    ref = generate_video(image, model=tiny_random_model("video"), device="cpu", dtype="float32", **args)
    gpu = generate_video(
        image, model=tiny_random_model("video", dtype=getattr(torch, dtype)), device="cuda", dtype=dtype, **args
    )
    assert np.isfinite(gpu.frames).all()
    assert np.abs(gpu.frames - ref.frames).mean() < 0.02
