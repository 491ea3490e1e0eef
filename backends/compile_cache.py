"""Where torch.compile's work is kept between runs, so that a second load of a model on the GPU
reuses the kernels and graphs inductor and Triton built the first time.

Inductor's default (/tmp/torchinductor_<user>) is lost at a reboot, and many systems clean /tmp;
gearterm keeps both caches under the user's cache dir (XDG_CACHE_HOME, else ~/.cache, on Linux)
unless the user has pointed them somewhere already. The caches are on disk, so torch's mega-cache
(torch.compiler.save_cache_artifacts), made to carry them to another machine, adds nothing here.
"""

from __future__ import annotations

import os
from pathlib import Path

# Each variable, and its folder under gearterm's: inductor's graphs and kernels, and the
# Triton kernels compiled outside inductor (gearterm's own, kernels/triton_*).
CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


def compile_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gearterm")) / "compile"


def use_compile_cache() -> str:
    """Point each cache the user has not set at its folder under compile_cache_dir(), and say
    where the compiled graphs are kept. Call before anything compiles: inductor fixes its
    folder the first time it looks for one."""
    for variable, folder in CACHES.items():
        if not os.environ.get(variable):
            os.environ[variable] = str(compile_cache_dir() / folder)
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]
