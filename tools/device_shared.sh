#!/usr/bin/env bash
# The copies of ../shared that the GPU machine needs (it does not see ../shared), for the device
# tool to carry (tools/device_prelude.sh unpacks them there): .devshared holds stories260K in its
# three forms and the TinyStories excerpt; .devsmol1-3 hold SmolLM2's GGUF in three parts, one for
# each call of tools/device_tables.sh (a call carries 64 MiB with the working tree; the first
# also carries .whl).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .devshared .devsmol1 .devsmol2 .devsmol3
mkdir -p .devshared/models .devshared/data .devsmol1 .devsmol2 .devsmol3
cp -r ../shared/models/stories260K* .devshared/models/
cp -r ../shared/data/tinystories-valid-head .devshared/data/
chmod -R u+w .devshared
gguf=../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
dd if="$gguf" of=.devsmol1/smol.a bs=1M count=14 status=none
dd if="$gguf" of=.devsmol2/smol.b bs=1M skip=14 count=44 status=none
dd if="$gguf" of=.devsmol3/smol.c bs=1M skip=58 status=none
du -sh .devshared .devsmol1 .devsmol2 .devsmol3
