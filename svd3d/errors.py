"""User-facing errors: one line that names the bad value and the fix. The CLI prints them and exits 2."""


class SVD3DError(ValueError):
    """A problem with what the user asked for (a path, a value, a model); the message says how to fix it."""
