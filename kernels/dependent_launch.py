"""Programmatic dependent launch (Hopper and later): a kernel may start while the one before
it is still running, and wait for it only where it reads what that one wrote.

Why: a decode step of a Llama-3-8B is about ten kernels a layer, most of them a few
microseconds long, and each one's start (launch, first loads in flight) would otherwise wait
for the whole of the one before. The gear GEMVs read weights that no kernel of the step
writes, so they can have their first codes in flight before the kernel before them is done.

The rule every kernel that takes part keeps (the one torch.compile's inductor keeps with
`enable_pdl`): wait for the kernel before (gdc_wait) before reading what a kernel of the
step wrote or writing anything, and let the next kernel launch (gdc_launch_dependents) only
after that wait. Then at most two kernels overlap, and a kernel that never waits still
starts only after everything two kernels back is done.

GEARTERM_PDL=0 turns it off (to measure it against the plain launches).
"""

from __future__ import annotations

import functools
import os

import torch

# Read once: it is set for a whole run (a benchmark's A/B), and launches should not look it up.
SWITCHED_OFF = os.environ.get("GEARTERM_PDL", "1") == "0"


@functools.cache
def _supported(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] >= 9


def enabled(device: torch.device) -> bool:
    """Whether kernels on `device` launch as dependents of the kernel before them."""
    if device.type != "cuda" or SWITCHED_OFF:
        return False
    return _supported(device.index if device.index is not None else torch.cuda.current_device())


def let_inductor_launch_dependents(device: torch.device) -> bool:
    """Turn on inductor's dependent launches (its generated kernels keep the rule above),
    where this device and this torch have them. Returns whether they are on."""
    import torch._inductor.config as inductor_config

    if not enabled(device) or not hasattr(inductor_config.triton, "enable_pdl"):
        return False
    inductor_config.triton.enable_pdl = True
    return True


def describe(device: torch.device) -> str:
    """What a benchmark prints about it."""
    if device.type != "cuda":
        return "dependent launches: n/a (no CUDA GPU)"
    if SWITCHED_OFF:
        return "dependent launches: off (GEARTERM_PDL=0)"
    if not enabled(device):
        return "dependent launches: off (this GPU predates Hopper)"
    import torch._inductor.config as inductor_config

    inductor = getattr(inductor_config.triton, "enable_pdl", None)
    return f"dependent launches: on for the gear GEMVs and attention; inductor's kernels {'on' if inductor else 'off'}"
