"""gearterm: chat with a local LLM while watching it shift gears."""

from pathlib import Path as _Path

# Installed, backends/ and kernels/ are gearterm/backends and gearterm/kernels (pyproject's
# package-dir). In a source checkout they sit beside gearterm/, so the checkout is searched
# too. They have no __init__.py: with the checkout on sys.path (python -m from its root,
# pytest) a folder without one never hides a real top-level package such as Hugging Face's
# `kernels`, which transformers imports.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "kernels" / "nested.py").is_file():
    __path__.append(str(_checkout))
