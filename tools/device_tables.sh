#!/usr/bin/env bash
# What issue #21 asks of the H200, in three device calls of one lease (a call may run 10 minutes,
# and SmolLM2's GGUF travels in three parts: tools/device_prelude.sh):
#   1: the CUDA kernel tests (about 4 minutes on a fresh machine), the decode table with its step
#      split and the kernel table (carry .whl .devshared .devsmol1);
#   2: the decode table again with cuBLAS's GEMV in the high gear (GEARTERM_HIGH_GEMV=cublas), the
#      gear GEMVs' block sizes on the decoder's shapes (the high gear's own beside cuBLAS fp16), the
#      decode attention's slice sizes (tools/probe_decode_attention.py) and the context sweep
#      (carry .devsmol2);
#   3: greedy GPU == CPU on every real model carried, SmolLM2 joined; the decoder's, lossless mode's
#      and the gate's CUDA tests, reuse across turns on the GPU (carry .devsmol3);
#   one: where device time allows one call only: the decode table with its step split and the gear
#      GEMVs' sweep, whose default rows are the kernel table's at batch 1 (carry .whl .devshared);
#   high: on a card that is not an H200, the high gear's own GEMV against cuBLAS alone: its tests,
#      its block sizes beside cuBLAS fp16, the decode table with it off, then on;
#   sweep: on a card that is not an H200, the gear GEMVs' tests and their block sizes beside cuBLAS
#      fp16;
#   exp: the gear GEMV's experiments PIN and TMA (kernels-h200.md): both experiments' sweep beside
#      the defaults and the probe LOADS_ONLY (the default's loads without its products), then the
#      decode table as it is, with TMA (GEARTERM_GEMV_TMA=3:1; KS 1, whose view has its strides in
#      order), then with PIN where x is not read ahead (GEARTERM_GEMV_PIN=wide), where time is
#      left (carry .whl .devshared);
#   qkv: the experiment QKV_EPILOGUE (kernels/triton_gemv_qkv.py): its CUDA tests and the MLP
#      epilogues', then the decode table with it on and off, both profiled (RUNS=n: alternated n
#      times; carry .whl .devshared);
#   ab: the decode table of this tree against an older one (tools/device_before.sh COMMIT lays out
#      what differs), alternated twice (RUNS=n: n times) on one machine, after the CUDA tests of
#      the gear GEMVs' epilogues (carry .whl .devshared).
# Make the carried copies first with tools/device_shared.sh (and the wheels with tools/device_wheels.sh).
# Usage: bash tools/device_tables.sh PART. The JSON tables land under $OUT, all printed text in
# $OUT/log-PART.txt. Another card stops parts 1 and one at once unless ANY_GPU=1.
. tools/device_prelude.sh || exit 1
part=${1:?which part: 1, 2, 3, one, high, sweep, exp, qkv or ab}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader)
[[ ($part != 1 && $part != one) || $gpu == *H200* || -n ${ANY_GPU:-} ]] || { echo "$gpu is not an H200: nothing run"; exit 3; }
exec > >(tee "$OUT/log-$part.txt") 2>&1
nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv,noheader
python3 -c "import torch, triton, transformers as t; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', t.__version__)"
bench="python3 -m gearterm.cli bench"
pytest="python3 -m pytest -q -p no:cacheprovider"
case $part in
1)
    timeout 240 $pytest tests/kernels/test_triton_gears_cuda.py
    timeout 170 $bench decode --shape llama3-8b --profile --json-out "$OUT/decode.json"
    timeout 100 $bench kernels --json-out "$OUT/kernels.json"
    ;;
2)
    GEARTERM_HIGH_GEMV=cublas timeout 190 $bench decode --shape llama3-8b --json-out "$OUT/decode-cublas.json"
    timeout 150 $bench kernels --sweep --batch 1 --impl fp16 --impl low --impl mid --impl high --shape 6144x4096 \
        --shape 4096x4096 --shape 28672x4096 --shape 4096x14336 --json-out "$OUT/sweep.json" | grep -v STAGES
    timeout 60 python3 tools/probe_decode_attention.py
    timeout 100 $bench decode --shape llama3-8b --no-compile --tokens 128 --context-sweep 512,4096,16384,32768 \
        --json-out "$OUT/context.json"
    ;;
3)
    join_parts smol ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 || exit 1
    timeout 300 $pytest tests/backends/test_gpu_equals_cpu.py
    timeout 200 $pytest tests/backends/test_lossless_cuda.py tests/backends/test_cuda_decoder_chunks.py \
        tests/backends/test_kv_reuse.py::test_gpu_turns_reuse_the_cache_and_reply_as_fresh_prompts tests/kernels/test_gate.py
    ;;
one | sweep)
    if [[ $part == one ]]; then
        timeout 170 $bench decode --shape llama3-8b --profile --json-out "$OUT/decode.json"
    else
        timeout 150 $pytest tests/kernels/test_triton_gears_cuda.py -k "own_high_gemv_gives or every_split"
    fi
    timeout 250 $bench kernels --sweep --batch 1 --impl fp16 --impl low --impl mid --shape 6144x4096 --shape 4096x4096 \
        --shape 14336x4096 --shape 28672x4096 --shape 4096x14336 --json-out "$OUT/sweep.json" | grep -v BLOCK_N
    ;;
high)
    timeout 150 $pytest tests/kernels/test_triton_gears_cuda.py -k "high_gear or own_high_gemv"
    timeout 100 $bench kernels --sweep --batch 1 --impl fp16 --impl high --shape 6144x4096 --shape 4096x4096 \
        --shape 28672x4096 --shape 4096x14336 --json-out "$OUT/sweep-high.json"
    for gemv in cublas own; do
        GEARTERM_HIGH_GEMV=$gemv timeout 190 $bench decode --shape llama3-8b --baseline-tokens 8 --energy-seconds 2 \
            --json-out "$OUT/decode-$gemv.json"
    done
    ;;
exp)
    timeout 240 $bench kernels --sweep --sweep-key PIN --sweep-key TMA --sweep-key LOADS_ONLY --batch 1 \
        --impl fp16 --impl low --impl mid \
        --shape 28672x4096 --shape 6144x4096 --shape 4096x14336 --json-out "$OUT/sweep-exp.json"
    for setting in off tma pin; do
        GEARTERM_GEMV_TMA=$([[ $setting == tma ]] && echo 3:1) GEARTERM_GEMV_PIN=$([[ $setting == pin ]] && echo wide) \
            timeout 150 $bench decode --shape llama3-8b --baseline-tokens 8 --energy-seconds 2 --json-out "$OUT/decode-$setting.json"
    done
    ;;
qkv)
    timeout 200 $pytest tests/kernels/test_triton_gears_cuda.py -k "qkv or silu or residual or epilogues"
    profile=--profile
    for run in $(seq "${RUNS:-1}"); do
        for setting in 1 0; do
            GEARTERM_QKV_EPILOGUE=$setting timeout 140 $bench decode --shape llama3-8b --baseline-tokens 8 \
                --energy-seconds 2 $profile --json-out "$OUT/decode-qkv$setting-$run.json"
            [[ $setting == 0 ]] && profile=
        done
    done
    ;;
ab)
    [[ -d .devbefore ]] || { echo "no .devbefore: run tools/device_before.sh COMMIT first"; exit 3; }
    timeout 170 $pytest tests/kernels/test_triton_gears_cuda.py -k "silu or residual or epilogues"
    rm -rf /tmp/before && mkdir /tmp/before && cp -r gearterm backends kernels pyproject.toml /tmp/before/
    cp -r .devbefore/. /tmp/before/
    find /tmp/before -name "*.absent" | while read -r f; do rm -f "$f" "${f%.absent}"; done
    profile=--profile
    for run in $(seq "${RUNS:-2}"); do  # RUNS=1 where device time is short
        for tree in after before; do
            dir=.; [[ $tree == before ]] && dir=/tmp/before
            (cd $dir && timeout 140 $bench decode --shape llama3-8b --baseline-tokens 8 --energy-seconds 2 $profile \
                --json-out "$OUT/decode-$tree-$run.json")
            profile=
        done
    done
    ;;
esac
