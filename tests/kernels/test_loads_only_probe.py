"""The probe LOADS_ONLY (bench kernels --sweep) claims the default GEMV's loads without its
products. Checked where no GPU is needed: both kernels compiled for sm_90 by the ptxas Triton
ships, and the global loads in their loops counted by kind from the SASS."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from gearterm.kernels.triton_gemv_mma import _gemv_mma_kernel  # noqa: E402

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
SIGNATURE = {"xw_ptr": "*i32", "hw_ptr": "*i32", "hs_ptr": "*fp16", "hz_ptr": "*fp16", "lw_ptr": "*i32",
             "ls_ptr": "*fp16", "y_ptr": "*fp16", "r_ptr": "*fp16", "G": "i32"}  # fmt: skip


def loop_loads(tmp_path: Path, **constants) -> tuple[Counter, int]:
    """The global loads (by width) in the compiled kernel's loop, and the loop's instructions."""
    constants = {"BF16": False, "KS": 4, "PDL": True, "SILU_TIMES_UP": False, "RESIDUAL": False, "PIN": 0, **constants}
    signature = {**SIGNATURE, **{name: "constexpr" for name in constants}}
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(8)}  # as Triton specializes the pointers at launch
    source = ASTSource(_gemv_mma_kernel, signature, constexprs=constants, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    cubin = tmp_path / "kernel.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    sass = subprocess.run([CUOBJDUMP, "--dump-sass", cubin], capture_output=True, text=True, check=True).stdout
    code = [(int(at, 16), text) for at, text in re.findall(r"/\*([0-9a-f]{4})\*/\s+([^;]*);", sass)]
    back = [(int(to, 16), at) for at, text in code for to in re.findall(r"BRA (0x[0-9a-f]+)", text) if int(to, 16) < at]
    assert len(back) == 1, "one loop expected"
    body = [text for at, text in code if back[0][0] <= at <= back[0][1]]
    return Counter(m.group(1) for text in body if (m := re.search(r"\b(LDG\S*)", text))), len(body)


@pytest.mark.skipif(not CUOBJDUMP.exists(), reason="this Triton ships no cuobjdump to read the compiled code")
@pytest.mark.parametrize("mid", [False, True], ids=["low", "mid"])
@pytest.mark.parametrize("ahead", [False, True], ids=["x-in-step", "x-ahead"])
def test_the_probe_loads_what_the_default_kernel_loads_without_its_products(tmp_path, monkeypatch, mid, ahead):
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # as the GPU machine's Triton 3.6 compiles (tools/kernel_registers.py)
    knobs = {"MID": mid, "X_AHEAD": ahead, "PREFETCH": 2 if mid and ahead else 0}
    loads, instructions = loop_loads(tmp_path, **knobs, LOADS_ONLY=False)
    probe_loads, probe_instructions = loop_loads(tmp_path, **knobs, LOADS_ONLY=True)
    assert loads == probe_loads and sum(loads.values()) == (38 if mid else 28)  # a step: codes, scale vectors, x
    assert probe_instructions < 0.7 * instructions  # the products are gone
