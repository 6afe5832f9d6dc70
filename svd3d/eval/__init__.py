"""Metrics: Chamfer distance, F-score and volume IoU on meshes; PSNR and SSIM on views."""
