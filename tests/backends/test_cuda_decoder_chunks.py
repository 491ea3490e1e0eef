"""How the GPU decoder splits a step into graphs (the capture itself needs a GPU and is tested
in tests/kernels/test_triton_gears_cuda.py): the first graph is one layer, so the GPU waits
for one layer's launch, and no chunk is more than twice the one before it."""

import pytest

from gearterm.backends.cuda_decoder import LONGEST_CHUNK, chunk_starts


@pytest.mark.parametrize("layers", [1, 2, 5, 8, 16, 32, 80])
def test_chunks_grow_from_one_layer(layers):
    bounds = [0, *chunk_starts(layers), layers]
    sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    assert sum(sizes) == layers and all(s > 0 for s in sizes)
    assert sizes[0] == 1
    assert all(later <= 2 * earlier for earlier, later in zip(sizes, sizes[1:]))
    assert max(sizes) <= LONGEST_CHUNK
