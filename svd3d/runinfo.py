"""What every run.json records: versions, the model's identity, timings."""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from svd3d.version import __version__


def versions() -> dict[str, str]:
    """The versions a run.json records. A package the job never imported is read from its installed metadata:
    importing diffusers and transformers only to ask costs `svd3d recon` more than a second."""

    def version(name: str) -> str:
        module = sys.modules.get(name)
        return module.__version__ if module is not None else metadata.version(name)

    return {
        "svd3d": __version__,
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "diffusers", "transformers")},
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_record(model) -> dict:
    return {"source": model.source, "fingerprint": model.fingerprint, "info": asdict(model.info)}


class Timer:
    """Named wall-clock sections: `with timer("sample"): ...`; `timer.seconds` maps name -> seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


def command_line() -> str:
    return " ".join(sys.argv)


def input_record(image) -> dict:
    """The input image as run.json records it: its path and content hash, or its size for an in-memory image."""
    if hasattr(image, "size") and hasattr(image, "mode"):
        return {"path": None, "size": list(image.size), "mode": image.mode}
    return {"path": str(image), "sha256": file_sha256(Path(image))}
