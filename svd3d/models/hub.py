"""Fetch a diffusers-format model from the Hugging Face hub (cache first), failing cleanly when offline."""

from __future__ import annotations

from pathlib import Path

import torch

from svd3d.errors import SVD3DError


def download(repo_id: str, dtype: torch.dtype) -> Path:
    """Local snapshot of repo_id with only what svd3d loads: configs and safetensors weights, the fp16 variant when
    half precision is asked for (half the download of SVD-XT's fp32 files)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    half = dtype in (torch.float16, torch.bfloat16)
    patterns = ["*.json", "*/*.fp16.safetensors"] if half else ["*.json", "*/*.safetensors"]
    ignore = None if half else ["*.fp16.safetensors"]
    local = f"run `huggingface-cli download {repo_id} --local-dir DIR`, then pass --model DIR"
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=ignore))
    except GatedRepoError as err:
        raise SVD3DError(
            f"{repo_id} is gated: accept its licence on huggingface.co and run `huggingface-cli login`; or {local}"
        ) from err
    except RepositoryNotFoundError as err:
        raise SVD3DError(f"no model {repo_id!r} on the Hugging Face hub; check the id, or pass a local path") from err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise SVD3DError(
            f"cannot reach the Hugging Face hub for {repo_id!r} and it is not in the local cache; "
            f"on a connected machine {local} (or pass a local svd_xt.safetensors)"
        ) from err
