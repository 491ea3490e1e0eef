#!/usr/bin/env bash
# The files of gearterm/, backends/ and kernels/ that differ between COMMIT and the working tree,
# as they were at COMMIT, under .devbefore/ (untracked: it travels with the working tree to the
# GPU machine). tools/device_tables.sh ab lays them over a copy of the tree there and times the
# decode step of both trees on one machine, alternated. Remove .devbefore/ before committing.
# Usage: bash tools/device_before.sh COMMIT
set -euo pipefail
cd "$(dirname "$0")/.."
commit=${1:?which commit is "before"}
rm -rf .devbefore
for f in $(git diff --name-only "$commit" -- gearterm backends kernels); do
    mkdir -p ".devbefore/$(dirname "$f")"
    if git cat-file -e "$commit:$f" 2>/dev/null; then git show "$commit:$f" > ".devbefore/$f"; else : > ".devbefore/$f.absent"; fi
done
find .devbefore -type f | sort
