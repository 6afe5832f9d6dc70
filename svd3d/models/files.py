"""Reading weight files safely: safetensors headers, streaming, and a cheap content fingerprint."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from svd3d.errors import SVD3DError


def read_header(path: Path) -> dict:
    """The JSON header of a safetensors file, checked against the file size, with errors that say what is wrong."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise SVD3DError(f"{path} is empty (0 bytes); re-download or re-export the checkpoint")
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise SVD3DError(f"{path} is too short to be a safetensors file ({size} bytes); re-download it")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or 8 + n > size or n > 100_000_000:
            raise SVD3DError(
                f"{path} is not a safetensors file or is truncated (header says {n} bytes, file has {size}); "
                "re-download it, or convert a .ckpt with safetensors first"
            )
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SVD3DError(f"{path} has a corrupt safetensors header ({err}); re-download it") from err
    if not isinstance(header, dict):
        raise SVD3DError(f"{path} has a corrupt safetensors header; re-download it")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise SVD3DError(
            f"{path} is truncated: its tensors need {8 + n + end} bytes but the file has {size}; re-download it"
        )
    return header


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a safetensors file, from its checked header (nothing else is read)."""
    return {k: tuple(v["shape"]) for k, v in read_header(path).items() if k != "__metadata__"}


def fingerprint(paths: list[Path], blocks: int = 16, block_size: int = 65536) -> str:
    """sha256 over each file's size, first MB and `blocks` evenly spaced 64 KB blocks: fast on 10 GB files, and it
    tells apart two fine-tunes of the same architecture (a full hash would take minutes). Recorded in run.json."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            for i in range(blocks):
                fh.seek(size * i // blocks)
                digest.update(fh.read(block_size))
    return digest.hexdigest()[:16]
