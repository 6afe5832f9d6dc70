"""The shared diffusion core: conditioning, EDM sigmas, the v-prediction denoiser, the Euler sampler, guidance,
VAE helpers, the per-frame conditioning vectors. Small pure functions; the pipelines and training compose them."""

from svd3d.core.conditioning import Conditioning
from svd3d.core.denoiser import denoise_vpred, vpred_scalings
from svd3d.core.guidance import GUIDANCE_SCHEDULES, guidance_scales, guided_denoiser
from svd3d.core.sampling import initial_latents, karras_sigmas, sample_euler
from svd3d.core.vectors import orbit_vector, video_vector

__all__ = [
    "Conditioning",
    "GUIDANCE_SCHEDULES",
    "denoise_vpred",
    "guidance_scales",
    "guided_denoiser",
    "initial_latents",
    "karras_sigmas",
    "orbit_vector",
    "sample_euler",
    "video_vector",
    "vpred_scalings",
]
