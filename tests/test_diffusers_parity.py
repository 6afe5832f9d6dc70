"""svd3d against diffusers on tiny random models: the same weights and noise must give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import float32_reorder_bound, make_test_image

from svd3d.models import load_model
from svd3d.models.diffusers_io import save_diffusers
from svd3d.pipelines.video import generate_video


def copy_norm_eps(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Give dst the GroupNorm epsilons of src, module by module. diffusers hard-codes 1e-6 in the res blocks of
    its cross-attention down blocks and all up blocks (1e-5 elsewhere); sgm, and svd3d, use 1e-5 in every res
    block. Copying them lets the comparison check everything else bit for bit."""
    eps = {n: m.eps for n, m in src.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    for name, module in dst.named_modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.eps = eps[name]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from svd3d.models.tiny import tiny_random_model

    return save_diffusers(tiny_random_model("video", seed=3), tmp_path_factory.mktemp("m") / "tiny-svd")


@pytest.mark.parametrize("guidance", [(1.0, 2.5), (1.0, 1.0)])
def test_video_frames_match_stable_video_diffusion_pipeline(tiny_folder, guidance):
    """Our unrolled pipeline vs diffusers' StableVideoDiffusionPipeline: same folder, seed, settings -> frames
    equal within 1e-4 (with diffusers' GroupNorm epsilons copied over, see copy_norm_eps)."""
    from diffusers import StableVideoDiffusionPipeline

    image = make_test_image(64, 64)
    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_folder)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        image,
        height=64,
        width=64,
        num_frames=8,
        num_inference_steps=5,
        min_guidance_scale=guidance[0],
        max_guidance_scale=guidance[1],
        fps=7,
        motion_bucket_id=127,
        noise_aug_strength=0.02,
        decode_chunk_size=8,
        generator=torch.Generator("cpu").manual_seed(11),
        output_type="np",
    ).frames[0]

    ours = load_model(tiny_folder)
    copy_norm_eps(pipe.unet, ours.unet)
    result = generate_video(
        image,
        model=ours,
        frames=8,
        steps=5,
        fps=7,
        motion_bucket=127,
        noise_aug=0.02,
        min_guidance=guidance[0],
        max_guidance=guidance[1],
        seed=11,
        size=(64, 64),
        decode_chunk=8,
        device="cpu",
        dtype="float32",
        progress=False,
    )
    assert result.frames.shape == ref.shape == (8, 64, 64, 3)
    # frames in [0, 1]; the two pipelines differ only in float32 rounding order (measured ~1e-6), amplified by 5
    # Euler steps: 1e-4 leaves room for any CPU, while a wrong schedule, guidance or conditioning moves frames by >1e-2
    assert np.abs(result.frames - ref).max() <= 1e-4
    assert result.frames.std() > 0.01  # not a degenerate (constant) output


def test_per_frame_unet_equals_stock_with_shared_vector(tiny_folder):
    from diffusers import UNetSpatioTemporalConditionModel

    stock = UNetSpatioTemporalConditionModel.from_pretrained(tiny_folder, subfolder="unet").eval()
    ours = load_model(tiny_folder).unet
    copy_norm_eps(stock, ours)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, 8, generator=g)
    t = torch.tensor([1.6377, -0.1733])
    ctx = torch.randn(2, 1, 32, generator=g)
    ids = torch.tensor([[6.0, 127.0, 0.02], [10.0, 40.0, 0.1]])
    with torch.no_grad():
        ref = stock(x, t, ctx, ids).sample
        shared = ours(x, t, ctx, ids).sample  # (B, F): one vector per video
        per_frame = ours(x, t, ctx, ids[:, None].expand(2, 3, 3)).sample  # (B, T, F), all frames equal
    # the same blocks, our embedding path: equal in real arithmetic, float32 rounding order may differ
    bound = float32_reorder_bound(ref, max(stock.config.block_out_channels))
    assert (shared - ref).abs().max() <= bound
    assert (per_frame - ref).abs().max() <= bound


def test_per_frame_vectors_reach_their_own_frames(tiny_orbit_model):
    """Changing frame 2's camera changes the output (UNet mixes frames, so all can move) — and a per-frame call
    differs from broadcasting frame 0's camera: the per-frame path is live."""
    unet = tiny_orbit_model.unet
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 8, 8, 8, generator=g)
    ctx = torch.randn(1, 1, 32, generator=g)
    az = torch.linspace(0, 6, 4)
    vec = torch.stack([torch.full((4,), 1e-5), torch.full((4,), 1.4), az], -1)[None]  # (1, T, 3)
    with torch.no_grad():
        a = unet(x, torch.tensor([0.3]), ctx, vec).sample
        b = unet(x, torch.tensor([0.3]), ctx, vec[:, 0]).sample
    assert (a - b).abs().max() > 1e-3
    assert (a[:, 0] - b[:, 0]).abs().max() < (a[:, 3] - b[:, 3]).abs().max()


def test_resnet_eps_default_is_sgm():
    from svd3d.models.unet import PerFrameUNet

    unet = PerFrameUNet(
        block_out_channels=(32, 32),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        layers_per_block=1,
        num_attention_heads=2,
        cross_attention_dim=32,
    )
    eps = {m.eps for n, m in unet.named_modules() if isinstance(m, torch.nn.GroupNorm) and "res_block" in n}
    assert eps == {1e-5}
