"""`python -m svd3d ...` (e.g. under `accelerate launch -m svd3d train ...`) is the `svd3d` command."""

from svd3d.cli import run

if __name__ == "__main__":
    run()
