"""Silence Triton's report of leaked bindings when the process exits."""

from __future__ import annotations

import atexit
import os
import sys


def _silence_stderr_if_triton_loaded() -> None:
    # nanobind prints some thirty lines of "leaked instance/type/function" for Triton's
    # bindings as the interpreter shuts down: objects Triton keeps for the life of the
    # process, nothing a user can act on. Triton silences its own compile workers this way.
    if "triton" in sys.modules:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


_installed = False


def install() -> None:
    """Call first thing: exit handlers run last-registered first, so this one runs last,
    after every handler that might still have something to say."""
    global _installed
    if not _installed:
        atexit.register(_silence_stderr_if_triton_loaded)
        _installed = True
