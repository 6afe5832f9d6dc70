"""A tiny text-to-image pipeline built offline in a second, for the tests of `svd3d video / orbit --prompt`:

    python tests/tiny_t2i.py OUT_DIR        # a diffusers StableDiffusionPipeline folder (about 1 MB)

It is a real diffusers `StableDiffusionPipeline` that `AutoPipelineForText2Image.from_pretrained` loads: a CLIP
tokenizer (a letters-and-digits vocabulary written here), a random 2-layer CLIP text encoder, a random
UNet2DConditionModel (block channels (32, 64), cross-attention width 32) and an Euler scheduler. Only its VAE is
not random: an AutoencoderTiny whose decoder is set by hand (not trained) to paint the first three latent
channels, blurred, as a soft coloured blob on a white canvas. So the image depends on the prompt and the seed
through the random UNet, and an orbit's object preprocessing finds an object in it; a random decoder makes noise
with no background to find. Nothing is downloaded; the images mean nothing.
"""

from __future__ import annotations

import json
import string
import sys
import tempfile
from pathlib import Path

import torch

LATENT_SIDE = 32  # the UNet's sample size: the pipeline's native image is 2x this (64 x 64)
BLUR_BLOCKS = 16  # decoder blocks that each blur once: how far the white border reaches into the canvas


def build_tiny_t2i(folder: str | Path, seed: int = 0) -> Path:
    """Write the pipeline to `folder` (save_pretrained) and return it."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # 1. a CLIP tokenizer over single letters, digits and a few marks (byte-level BPE with no merges)
    symbols = list(string.ascii_lowercase + string.digits + ",.-'")
    vocab = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]
    with tempfile.TemporaryDirectory() as words:
        (Path(words) / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
        (Path(words) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(f"{words}/vocab.json", f"{words}/merges.txt", model_max_length=77)

    # 2. random text encoder and UNet
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            projection_dim=32,
        )  # fmt: skip
    )
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIDE, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32,
    )  # fmt: skip
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1)  # fmt: skip

    pipe = StableDiffusionPipeline(vae=blob_decoder_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


def blob_decoder_vae(colour: tuple[float, float, float] = (0.8, 0.45, 0.3), gain: float = 6.0, texture: float = 0.3):
    """A 4-channel AutoencoderTiny (scale factor 2) whose decoder is, by construction:

        window = blur^16(1)            zero padding makes it ~0.25 at the border, 1 in the middle
        rgb_c  = colour_c + gain * (1 - window) + texture * blur^16(latent_c)     (clamped to [0, 1])

    so the border is white and the middle a soft blob of `colour`, mottled by the latent. Its encoder is random
    (text-to-image never encodes)."""
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny(encoder_block_out_channels=(4, 4), decoder_block_out_channels=(4, 4),
                          num_encoder_blocks=(1, 1), num_decoder_blocks=(BLUR_BLOCKS, 1), latent_channels=4)  # fmt: skip
    identity = torch.zeros(4, 4, 3, 3)
    identity[range(4), range(4), 1, 1] = 1.0
    blur = torch.zeros(4, 4, 3, 3)
    blur[range(4), range(4)] = 1.0 / 9.0
    layers = vae.decoder.layers  # conv_in, ReLU, blocks..., Upsample, conv, block, conv_out
    with torch.no_grad():
        # conv_in: channel 0 the constant 1 (the window), channels 1-3 the latent's first three, lifted by 3 so the
        # ReLUs pass them (the decoder squashes latents to (-3, 3) first)
        layers[0].weight.zero_()
        layers[0].bias.copy_(torch.tensor([1.0, 3.0, 3.0, 3.0]))
        for c in range(3):
            layers[0].weight[c + 1, c, 1, 1] = 1.0
        blocks = [m for m in layers if type(m).__name__ == "AutoencoderTinyBlock"]
        for block in blocks:  # relu(conv(x) + x) with conv = identity, identity, blur - identity: one blur each
            first, _, second, _, third = block.conv
            for conv, weight in ((first, identity), (second, identity), (third, blur - identity)):
                conv.weight.copy_(weight)
                conv.bias.zero_()
        blocks[-1].conv[4].weight.zero_()  # the last block (after upsampling) passes its input on
        upsampled = next(i for i, m in enumerate(layers) if isinstance(m, torch.nn.Upsample))
        layers[upsampled + 1].weight.copy_(identity)
        # conv_out: colour + gain * (1 - window) + texture * (latent - its lift of 3 * window)
        out = layers[-1]
        out.weight.zero_()
        out.weight[:, 0, 1, 1] = -(gain + 3.0 * texture)
        for c in range(3):
            out.weight[c, c + 1, 1, 1] = texture
        out.bias.copy_(torch.tensor(colour) + gain)
    return vae


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/tiny_t2i.py OUT_DIR")
    print(f"wrote {build_tiny_t2i(sys.argv[1])}")
