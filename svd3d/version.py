"""svd3d's version, written once: pyproject.toml reads it from here (`[tool.setuptools.dynamic]`), run.json records
it (svd3d.runinfo), and the package exports it as `svd3d.__version__`."""

__version__ = "0.1.0"
