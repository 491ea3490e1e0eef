"""Registers and spills of the batch-1 gear GEMV and the decode attention, compiled for an H100/H200
(sm_90) on a machine without a GPU: Triton compiles to a cubin offline, and the cuobjdump it ships
reads the resource use. Occupancy follows from it (65,536 registers a multiprocessor: a 128-thread
program of 123 registers a thread fits four times, one of 165 three). This is the Triton installed
here, which may not be the GPU machine's; its numbers are for comparing variants, not a measurement.
Run from the repository root: .venv/bin/python tools/kernel_registers.py; with the GPU machine's
Triton, installed apart (pip install --no-deps --target /tmp/t36 triton==3.6.0): PYTHONPATH=/tmp/t36 first."""

import os
import re
import subprocess
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # as Triton 3.6 on the GPU machine: fused multiply-adds
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from gearterm.kernels.triton_decode_attention import attend_slices  # noqa: E402
from gearterm.kernels.gear import Gear  # noqa: E402
from gearterm.kernels.triton_gemv_mma import _gemv_mma_kernel, prefetch_steps  # noqa: E402
from gearterm.kernels.triton_gemv_qkv import _gemv_f16_qkv_kernel, _gemv_qkv_kernel  # noqa: E402
from gearterm.kernels.triton_gemv_tma import _gemv_tma_kernel  # noqa: E402

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
ALIGNED = 16  # Triton specializes a pointer or stride divisible by 16 at launch: vector loads
CUBIN = Path("/tmp/gearterm-kernel.cubin")  # the kernel usage() compiled last


def usage(kernel, signature: dict, constants: dict, aligned: range, **options) -> str:
    signature = {**signature, **{name: "constexpr" for name in constants}}
    attrs = {(i,): [["tt.divisibility", ALIGNED]] for i in aligned}
    source = ASTSource(kernel, signature, constexprs=constants, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
    CUBIN.write_bytes(compiled.asm["cubin"])
    dump = subprocess.run([CUOBJDUMP, "--dump-resource-usage", CUBIN], capture_output=True, text=True, check=True).stdout
    return " ".join(re.search(r"(REG:\d+) (STACK:\d+)", dump).groups()) + f" SHARED:{compiled.metadata.shared}"


def code_loads_in_loop() -> str:
    """Where the last kernel compiled by usage() issues its 16-byte weight loads in its loop (the
    first backward branch's span), as shares of the loop's instructions: ptxas places them, not
    the source."""
    sass = subprocess.run([CUOBJDUMP, "--dump-sass", CUBIN], capture_output=True, text=True).stdout
    code = [(int(a, 16), text) for a, text in re.findall(r"/\*([0-9a-f]{4})\*/\s+([^;]*);", sass)]
    jump = next((at, int(to, 16)) for at, text in code for to in re.findall(r"BRA (0x[0-9a-f]+)", text) if int(to, 16) < at)
    loop = [text for at, text in code if jump[1] <= at <= jump[0]]
    shares = [i / len(loop) for i, text in enumerate(loop) if re.search(r"LDG\.E\.128", text)]
    return f"loop {len(loop)} instructions, code loads at {min(shares):.2f}-{max(shares):.2f} of it"


print(f"Triton {triton.__version__}, sm_90, registers a thread, stack bytes (spills) and shared memory bytes a program")
gemv = {"xw_ptr": "*i32", "hw_ptr": "*i32", "hs_ptr": "*fp16", "hz_ptr": "*fp16", "lw_ptr": "*i32", "ls_ptr": "*fp16",
        "y_ptr": "*fp16", "r_ptr": "*fp16", "G": "i32"}  # fmt: skip
for mid in (False, True):
    for ks in (2, 4, 8):
        for ahead in (False, True):
            prefetch = prefetch_steps(Gear.MID if mid else Gear.LOW, ahead)
            # The epilogues where the decoder asks for them: SiLU(gate) * up on the stacked gate and
            # up rows (28672, x not ahead), the residual on the down projection (4096, x ahead).
            for epilogue in ("", " SiLU(gate) * up" if not ahead else " + residual"):
                constants = {"MID": mid, "BF16": False, "KS": ks, "X_AHEAD": ahead, "PREFETCH": prefetch, "PDL": True,
                             "SILU_TIMES_UP": "SiLU" in epilogue, "RESIDUAL": "residual" in epilogue, "PIN": 0,
                             "LOADS_ONLY": False}  # fmt: skip
                used = usage(_gemv_mma_kernel, gemv, constants, range(8), num_warps=ks)
                print(f"gear GEMV {'mid' if mid else 'low'} KS {ks} x ahead {ahead!s:5} prefetch {prefetch}{epilogue}: {used}")
# The experiment PIN (triton_gemv_mma._pin_loads), x not ahead, beside the default; then the probe
# LOADS_ONLY (the same loads, the products replaced by an XOR of the words).
for mid in (False, True):
    for pin, probe in ((0, False), (1, False), (2, False), (0, True)):
        constants = {"MID": mid, "BF16": False, "KS": 4, "X_AHEAD": False, "PREFETCH": 0, "PDL": True,
                     "SILU_TIMES_UP": False, "RESIDUAL": False, "PIN": pin, "LOADS_ONLY": probe}  # fmt: skip
        used = usage(_gemv_mma_kernel, gemv, constants, range(8), num_warps=4)
        name = "LOADS_ONLY" if probe else f"PIN {pin}"
        print(f"gear GEMV {'mid' if mid else 'low'} KS 4 x ahead False {name}: {used}, {code_loads_in_loop()}")
# The experiment TMA (triton_gemv_tma): codes by bulk copies through stages - 1 shared-memory buffers.
for mid in (False, True):
    for ks in (1, 2, 4):
        codes = "tensordesc<i32[1,1,16,16]>" if ks == 1 else f"tensordesc<i32[2,{ks},1,8,16]>"
        tma = {"xw_ptr": "*i32", "h_codes": codes, "hs_ptr": "*fp16", "hz_ptr": "*fp16", "l_codes": codes,
               "ls_ptr": "*fp16", "y_ptr": "*fp16", "r_ptr": "*fp16", "G": "i32"}  # fmt: skip
        for stages in (2, 3, 4):
            constants = {"MID": mid, "BF16": False, "KS": ks, "STAGES": stages, "PDL": True, "SILU_TIMES_UP": False,
                         "RESIDUAL": False}  # fmt: skip
            used = usage(_gemv_tma_kernel, tma, constants, (0, 2, 3, 5, 6, 7, 8), num_warps=ks)
            print(f"gear GEMV {'mid' if mid else 'low'} KS {ks} TMA stages {stages}: {used}")
# The experiment QKV_EPILOGUE (triton_gemv_qkv): the default loop, then the rotation and the cache
# write, at Llama-3-8B's q/k/v (32 heads of 128 on 8, 6144 rows: KS 4, x not ahead).
qkv = {**{k: v for k, v in gemv.items() if k not in ("y_ptr", "r_ptr", "G")}, "q_ptr": "*fp16", "cos_ptr": "*fp16",
       "sin_ptr": "*fp16", "pos_ptr": "*i64", "k_ptr": "*fp16", "v_ptr": "*fp16", "G": "i32", "positions": "i32"}  # fmt: skip
for mid in (False, True):
    constants = {"Q_ROWS": 4096, "KV_ROWS": 1024, "HEAD_DIM": 128, "ROTARY_DIM": 128, "MID": mid, "BF16": False,
                 "KS": 4, "X_AHEAD": False, "PREFETCH": 0, "PDL": True}  # fmt: skip
    used = usage(_gemv_qkv_kernel, qkv, constants, range(12), num_warps=4)
    print(f"gear GEMV {'mid' if mid else 'low'} KS 4 QKV_EPILOGUE: {used}, {code_loads_in_loop()}")
f16_qkv = {"x_ptr": "*fp16", "w_ptr": "*fp16", "q_ptr": "*fp16", "cos_ptr": "*fp16", "sin_ptr": "*fp16", "pos_ptr": "*i64",
           "k_ptr": "*fp16", "v_ptr": "*fp16", "K": "i32", "positions": "i32"}  # fmt: skip
constants = {"Q_ROWS": 4096, "KV_ROWS": 1024, "HEAD_DIM": 128, "ROTARY_DIM": 128, "BLOCK_K": 1024, "PDL": True}
print(f"high gear GEMV QKV_EPILOGUE, 8 warps: {usage(_gemv_f16_qkv_kernel, f16_qkv, constants, range(10), num_warps=8)}")

names = "q_ptr k_ptr v_ptr pos_ptr out_ptr max_ptr sum_ptr T L WINDOW scale stride_qt stride_qh stride_kh stride_kl stride_vh stride_vl"
types = ["*fp16"] * 3 + ["*i64"] + ["*fp32"] * 3 + ["i32"] * 3 + ["fp32"] + ["i32"] * 6
attention = dict(zip(names.split(), types))
for block, warps, stages in [(64, 4, 3), (128, 8, 3)]:
    constants = {"GROUP": 4, "ROWS": 16, "HEAD_DIM": 128, "DIM": 128, "SLICE": 128, "SPREAD": 32, "BLOCK": block,
                 "IEEE": False, "PDL": True}  # fmt: skip
    aligned = [0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]
    used = usage(attend_slices, attention, constants, aligned, num_warps=warps, num_stages=stages)
    print(f"decode attention block {block} warps {warps} stages {stages}: {used}")
