"""svd3d's version, at the bottom of the package so that anything may record it without importing the package
root (run.json, dataset manifests). pyproject.toml states the same number for packaging."""

__version__ = "0.1.0"
