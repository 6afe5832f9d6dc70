"""Ctrl-C and SIGTERM: how a job is interrupted, and the few places where it must not be.

A job is interrupted by KeyboardInterrupt, which unwinds it through its `finally` blocks (staged outputs removed,
locks released). Two things can spoil that, and this module is where they are handled:

- a few renames must happen all or none (`held`: the signal is delivered when the block ends);
- a native extension interrupted while it initialises (open3d, xatlas and fast_simplification are pybind11 or
  Cython modules imported on first use, mid-job) turns the KeyboardInterrupt into an ImportError ("initialization
  failed"), so the job would report a missing dependency instead of an interruption, and CPython may remember an
  unhandled KeyboardInterrupt and end the process by SIGINT whatever exit code it chose. `import_whole` imports
  such a module with the signals held; `caught` records every signal that arrived, so an error raised after one
  is still reported as the interruption it is;
- a library that catches BaseException swallows the KeyboardInterrupt, and the job would go on and put its
  output in place as if never interrupted (trimesh imports its optional parts in `try: ... except BaseException`:
  Ctrl-C during `import trimesh` is lost 2 times in 3). trimesh is imported with `import_whole` too, and `check`,
  called before an output is put in place and at each step of the long loops, raises the interruption again.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_RECEIVED: list[list[int]] = []  # the signals each enclosing `caught` block has recorded, innermost last


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold back SIGINT / SIGTERM (delivered when the block ends), so the block runs all or none.

    Held at the Python level: a signal's Python handler always runs in the main thread, but the OS may hand the
    signal to any thread that does not block it (torch's and tqdm's threads), so blocking it in this thread alone
    (pthread_sigmask) would still raise KeyboardInterrupt inside the block. Off the main thread (which alone may
    set handlers, and never receives KeyboardInterrupt) the block simply runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        if previous[signum] is not None:  # None: a handler not set from Python; leave it be
            signal.signal(signum, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def import_whole(name: str) -> ModuleType:
    """`import name` with Ctrl-C / SIGTERM held until the module is loaded (see the module's
    docstring: a native extension must not be interrupted while it initialises)."""
    with held():
        __import__(name)  # the import statement's own hook (builtins.__import__), as `import name` would
    return sys.modules[name]


@contextlib.contextmanager
def caught() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM both raise KeyboardInterrupt (SIGTERM: kill, timeout, a cluster's
    scheduler) and are recorded in the yielded list, in order, so the caller can tell an interruption from an
    error that a library raised while it was being interrupted, and Ctrl-C from SIGTERM."""
    received: list[int] = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    _RECEIVED.append(received)
    try:
        yield received
    finally:
        _RECEIVED.remove(received)
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def check() -> None:
    """Raise KeyboardInterrupt if the job (the innermost `caught` block) has received SIGINT / SIGTERM: the
    interrupt was raised once already, so something swallowed it (see the module's docstring)."""
    if _RECEIVED and _RECEIVED[-1]:
        raise KeyboardInterrupt
