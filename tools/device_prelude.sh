# Sourced first by a command run on the GPU machine (the device tool), from the checkout's root:
#   . tools/device_prelude.sh || exit 1
# It puts the lock's wheels (tools/device_wheels.sh, carried as .whl) on PYTHONPATH, so the run
# tests what users install, and rebuilds ../shared there from .devshared (the small models and
# data, copied from ../shared here: the GPU machine does not see it). Files over the carry limit
# travel in parts across calls of one lease: every .devsmol*/ part carried is gathered under
# /tmp/parts, and `join_parts NAME DEST SHA256` joins them once all have come.
# A later call of one lease may leave .whl behind (to carry a part instead): /tmp/site still holds them.
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || return 1
elif [ ! -d /tmp/site ]; then
    echo "no .whl carried and none installed on this machine: run tools/device_wheels.sh, carry .whl" >&2
    return 1
fi
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
mkdir -p ../shared /tmp/parts
[ -d .devshared ] && cp -r .devshared/* ../shared/
for part in .devsmol*/*; do [ -f "$part" ] && cp "$part" /tmp/parts/; done

join_parts() {  # NAME DEST SHA256: /tmp/parts/NAME* joined into DEST, checked against SHA256
    mkdir -p "$(dirname "$2")" && cat /tmp/parts/"$1"* > "$2" && echo "$3  $2" | sha256sum -c --quiet
}
