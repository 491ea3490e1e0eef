#!/usr/bin/env bash
# Wheels, at the lock's versions, of the libraries gearterm imports that the GPU machine's
# image holds at other versions (transformers 5.17 there) or lacks, downloaded into .whl/
# for the device tool to carry, so GPU runs test what users install. A run then starts with:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
# torch and triton stay the machine's own CUDA builds: state their versions beside results.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES="transformers kernels huggingface_hub tokenizers hf-xet httpx2 httpcore2 truststore tomlkit click typer safetensors gguf platformdirs"
rm -rf .whl && mkdir .whl
for name in $NAMES; do
    pin=$(grep -i "^${name}==" requirements.lock) || { echo "$name is not in requirements.lock" >&2; exit 1; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "$pin"
done
ls .whl
