"""The fused low/mid gear kernels against gearterm.kernels.nested's reference, on the CPU through
Triton's interpreter (CI has no GPU), the word layout they read, the fused RMSNorm and the
decode attention kernel.

TRITON_INTERPRET must be set when a kernel is decorated and while it runs. This module
imports the Triton kernel modules interpreted and sets the variable for its own tests only;
at the end it re-imports them compiled, for the GPU tests that may share the process."""

import importlib
import os

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402
if tuple(int(v) for v in triton.__version__.split(".")[:2]) < (3, 9):
    # Seen with 3.6: its interpreter cannot iterate tl.range over a runtime bound.
    pytest.skip("these tests need Triton's interpreter from 3.9 on", allow_module_level=True)


def _set_interpret(value: str | None) -> str | None:
    before = os.environ.get("TRITON_INTERPRET")
    if value is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = value
    return before


KERNEL_MODULES = {
    "gearterm.kernels.triton_gears": "_gemv_kernel",
    "gearterm.kernels.triton_rmsnorm": "_rms_norm_kernel",
    "gearterm.kernels.triton_decode_attention": "attend_slices",
    "gearterm.kernels.triton_gemv_f16": "_gemv_f16_kernel",
    "gearterm.kernels.triton_gemv_tma": "_gemv_tma_kernel",
    "gearterm.kernels.triton_gemv_qkv": "_gemv_qkv_kernel",
}


def _import_kernels(interpreted: bool) -> list:
    """The Triton kernel modules with their kernels built for the interpreter or compiled,
    whichever way another test module in this process imported them."""
    from triton.runtime.interpreter import InterpretedFunction

    before = _set_interpret("1" if interpreted else None)
    try:
        modules = []
        for name, kernel in KERNEL_MODULES.items():
            module = importlib.import_module(name)
            if isinstance(getattr(module, kernel), InterpretedFunction) != interpreted:
                module = importlib.reload(module)
            modules.append(module)
        return modules
    finally:
        _set_interpret(before)


triton_gears, triton_rmsnorm, _, triton_gemv_f16, triton_gemv_tma, triton_gemv_qkv = _import_kernels(interpreted=True)


@pytest.fixture(autouse=True, scope="module")
def _interpreted():
    before = _set_interpret("1")
    _import_kernels(interpreted=True)
    yield
    _set_interpret(before)
    _import_kernels(interpreted=False)


from gearterm.kernels.gear import Gear  # noqa: E402
from gearterm.kernels.matmul import geared_matmul  # noqa: E402
from gearterm.kernels.nested import pack, reference_matmul, unpack_nibbles  # noqa: E402
from gearterm.kernels.word_planes import WordPlanes, to_nested, to_word_planes  # noqa: E402

gear_matmul = triton_gears.gear_matmul
GEARS = [Gear.LOW, Gear.MID]
# (out, in): odd sizes, `in` below one group (group = in), not a multiple of 128 or of 8.
SHAPES = [(8, 128), (5, 37), (13, 300), (16, 64), (7, 100), (3, 1), (9, 260)]


def planes_for(out_features: int, in_features: int, seed: int) -> tuple:
    torch.manual_seed(seed)
    nw = pack(torch.randn(out_features, in_features) * 0.05)
    return nw, to_word_planes(nw)


def assert_matches_reference(y: torch.Tensor, x: torch.Tensor, nw, gear: Gear) -> None:
    """Against the reference in float64: float32 inputs agree to rounding, 16-bit ones to
    the rounding of the 16-bit output. Every element is compared: none left unwritten."""
    ref = reference_matmul(x.double(), nw, gear)
    assert y.shape == ref.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    scale = ref.abs().max().item() + 1e-6
    rtol = 1e-5 if x.dtype == torch.float32 else 2e-3
    err = (y.double() - ref).abs().max().item()
    assert err <= rtol * scale, f"max abs error {err:.3g} vs reference max {scale:.3g}"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("batch", [1, 2, 5, 16, 17])
def test_kernels_match_reference(shape, batch):
    nw, planes = planes_for(*shape, seed=batch)
    for dtype in (torch.float32, torch.float16):
        x = torch.randn(batch, shape[1]).to(dtype)
        for gear in GEARS:
            assert_matches_reference(gear_matmul(x, planes, gear), x, nw, gear)


@pytest.mark.parametrize(
    "lead, config",
    [
        ((1, 1), {"BLOCK_N": 2, "BLOCK_G": 2, "num_warps": 1}),
        ((2, 2), {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_G": 2, "num_warps": 1}),
    ],
)
def test_unmasked_path_when_everything_divides(lead, config):
    """Whole groups and blocks that divide rows and groups: the kernels' no-mask branch.
    Leading dimensions of x are kept."""
    nw, planes = planes_for(8 if config.get("BLOCK_M") is None else 32, 512, seed=3)
    x = torch.randn(*lead, 512, dtype=torch.float16)
    for gear in GEARS:
        y = gear_matmul(x, planes, gear, config)
        assert y.shape == (*lead, planes.shape[0])
        assert_matches_reference(y.reshape(-1, y.shape[-1]), x.reshape(-1, 512), nw, gear)


@pytest.mark.parametrize("shape", [(8, 128), (40, 300), (13, 37), (35, 512)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_dequantized_weight_is_the_references(shape):
    """The weight a GPU's prompt chunk hands to cuBLAS (triton_gears.dequantize) is
    nested.dequantize's, in float32 to its rounding and in float16 to one rounding: partial
    row blocks, groups and words, and whole ones."""
    from gearterm.kernels.nested import dequantize as reference

    nw, planes = planes_for(*shape, seed=shape[0])
    for gear in GEARS:
        expected = reference(nw, gear).double()
        for dtype, tolerance in ((torch.float32, 1e-6), (torch.float16, 1e-3)):
            got = triton_gears.dequantize(planes, gear, dtype)
            assert got.shape == shape and got.dtype == dtype and torch.isfinite(got).all()
            scale = expected.abs().max().item()
            assert (got.double() - expected).abs().max().item() <= tolerance * scale, (gear, dtype)


def test_gears_differ_and_mid_is_closer_to_the_weight():
    nw, planes = planes_for(16, 256, seed=7)
    x = torch.randn(1, 256)
    exact = x.double() @ nw.weight.double().T
    low, mid = (gear_matmul(x, planes, gear).double() for gear in GEARS)
    assert not torch.equal(low, mid)
    assert (mid - exact).norm() < 0.5 * (low - exact).norm()


def test_geared_matmul_sends_words_to_the_kernels_and_nibbles_to_the_reference():
    nw, planes = planes_for(12, 200, seed=11)
    x = torch.randn(2, 200)
    for gear in GEARS:
        assert torch.allclose(geared_matmul(x, planes, gear), reference_matmul(x, nw, gear), atol=1e-5)
    assert torch.equal(geared_matmul(x, planes, Gear.HIGH), x @ nw.weight.T)


def test_high_gear_is_not_a_kernel():
    _, planes = planes_for(4, 16, seed=0)
    with pytest.raises(ValueError, match="original weight"):
        gear_matmul(torch.randn(1, 16), planes, Gear.HIGH)


def test_the_high_gears_own_gemv_is_asked_for_only_on_a_gpu(monkeypatch):
    """GEARTERM_HIGH_GEMV=own does not reach a CPU layer (cuBLAS's F.linear there is the CPU's
    BLAS), and a value that is neither own nor cublas is refused, not read as one of them."""
    from gearterm.kernels import matmul

    for value in ("", "own", "cublas"):
        monkeypatch.setattr(matmul, "HIGH_GEMV", value)
        assert not matmul.own_high_gemv(torch.device("cpu"))
    monkeypatch.setattr(matmul, "HIGH_GEMV", "triton")
    with pytest.raises(ValueError, match="own or cublas"):
        matmul.own_high_gemv(torch.device("cpu"))


@pytest.mark.parametrize(
    "shape, config",
    [
        ((16, 1024), None),  # the default blocks: one step of `in`, the loop not entered
        ((12, 2048), {"BLOCK_N": 4, "BLOCK_K": 512, "num_warps": 4}),  # four steps
        ((8, 512), {"BLOCK_N": 8, "BLOCK_K": 256, "num_warps": 2}),
    ],
    ids=["one-step", "four-steps", "two-steps"],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_high_gear_own_gemv_matches_the_float64_product(shape, config, dtype):
    """The high gear's own GEMV (the original 16-bit weight, one row of x) gives x @ W^T to
    one rounding of its 16-bit output, in every row."""
    torch.manual_seed(shape[0])
    w = (torch.randn(*shape) * 0.05).to(dtype)
    x = torch.randn(1, shape[1]).to(dtype)
    y = triton_gemv_f16.gemv_f16(x, w, config)
    ref = x.double() @ w.double().T
    assert y.shape == (1, shape[0]) and y.dtype == dtype
    ulp = 2e-3 if dtype == torch.float16 else 1e-2
    assert (y.double() - ref).abs().max().item() <= ulp * ref.abs().max().item()



def test_high_gear_own_gemv_adds_the_residual_as_eager_torch_does():
    """Given the residual, the own GEMV writes residual + x @ W^T, rounded as eager
    `residual + F.linear(x, W)` rounds: the products to 16 bits, then the sum (the decoder's
    residual add after the MLP, in the down projection's kernel). float16 only: Triton's
    interpreter truncates float32 to bfloat16 where a GPU rounds to nearest (the CUDA test
    checks bfloat16)."""
    torch.manual_seed(3)
    w = torch.randn(12, 2048, dtype=torch.float16) * 0.05
    x, residual = torch.randn(1, 2048, dtype=torch.float16), torch.randn(1, 12, dtype=torch.float16) * 4
    products = triton_gemv_f16.gemv_f16(x, w)
    assert torch.equal(triton_gemv_f16.gemv_f16(x, w, residual=residual), residual + products)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_word_layout_round_trips(shape):
    nw, planes = planes_for(*shape, seed=1)
    back = to_nested(planes)
    assert torch.equal(back.h_codes, nw.h_codes) and torch.equal(back.l_codes, nw.l_codes)
    assert planes.h_scale is nw.h_scale  # scales are shared, not copied
    assert planes.h_words.dtype == torch.int32
    tiles = -(-shape[0] // 16)
    assert planes.h_words.shape == (tiles, planes.groups, 16 * planes.words_per_group)
    assert planes.nbytes(Gear.LOW) < planes.nbytes(Gear.MID) < planes.nbytes(Gear.HIGH) or shape[1] < 8


def test_word_layout_puts_channel_pairs_in_16_bit_halves_and_rows_in_tiles():
    """Word w of a group holds its channels 8w..8w+7, channel 8w + e in nibble (0, 4, 2, 6,
    1, 5, 3, 7)[e]; row r's words of group g are block r // 16, group g, row r % 16."""
    nw, planes = planes_for(20, 300, seed=5)  # 3 groups of 128, 16 words each; the last is padded
    codes = unpack_nibbles(nw.h_codes)
    words = planes.h_words.to(torch.int64) & 0xFFFFFFFF
    for row, group, word, nibble, e in [(0, 0, 0, 0, 0), (3, 0, 15, 7, 7), (17, 1, 3, 4, 1), (19, 2, 2, 2, 2), (5, 1, 9, 1, 4)]:
        channel = group * 128 + 8 * word + e
        code = (words[row // 16, group, (row % 16) * 16 + word] >> (4 * nibble)) & 0xF
        expected = codes[row, channel] if channel < 300 else 0
        assert code.item() == int(expected)
    assert words[1, :, 4 * 16 :].eq(0).all()  # rows 20..31 are padding


@pytest.mark.parametrize("ks", [1, 2, 4])
def test_the_bulk_copy_view_reads_the_tile_the_mma_kernel_reads(ks):
    """The experiment TMA copies a group's codes through a view of the words (triton_gemv_tma.
    _descriptor; for KS > 1 with strides out of dimension order); reshaped, the block must be the
    [16 KS, 16] tile the mma.sync kernel's pointers read, row 8 (v // 8 KS) + v % 8 of chunk
    (v // 8) % KS at tile row v, for every program, chunk and group."""

    @triton.jit
    def count_differences(codes, words_ptr, differ_ptr, G, KS: tl.constexpr):
        v = tl.arange(0, 16 * KS)[:, None]
        GC = G // KS
        tile = tl.program_id(0) * (G * 256) + (v // (8 * KS) * 8 + v % 8) * 16 + (v // 8) % KS * (GC * 256)
        for g in range(0, GC):
            copied = triton_gemv_tma._codes(codes, tl.program_id(0) * KS, g, KS)
            read = tl.load(words_ptr + tile + g * 256 + tl.arange(0, 16)[None, :])
            differ = tl.reduce(tl.reduce((copied != read).to(tl.int32), 1, triton_gears._add), 0, triton_gears._add)
            tl.atomic_add(differ_ptr, differ)  # (tl.sum stays compiled in a test session: triton_gears._add)

    torch.manual_seed(ks)
    tiles, groups = 3, 8
    words = torch.randint(-(2**31), 2**31 - 1, (tiles, groups, 256), dtype=torch.int32)
    differ = torch.zeros(1, dtype=torch.int32)
    count_differences[(tiles,)](triton_gemv_tma._descriptor(words, ks), words, differ, groups, KS=ks)
    assert differ.item() == 0
    # The comparison can fail: against the words with the rows of each tile turned by one.
    turned = words.view(tiles, groups, 16, 16).roll(1, dims=2).reshape(tiles, groups, 256).contiguous()
    count_differences[(tiles,)](triton_gemv_tma._descriptor(words, ks), turned, differ, groups, KS=ks)
    assert differ.item() > 0


@pytest.mark.parametrize("rotary_dim", [128, 64], ids=["all-rotate", "partial"])
def test_the_qkv_epilogue_rotates_and_writes_as_the_decoder_does(rotary_dim):
    """The experiment QKV_EPILOGUE's epilogue as the low/mid gear's kernel calls it (triton_gemv_qkv.
    _write_qkv; that GEMV is inline PTX, CUDA only) given q, k and v rows in rotary tiles: q as the
    decoder rotates it, k rotated and v into the cache at the position, in each kv head, and
    nothing else of the cache touched. Heads of 128 (3 query heads on 2 kv heads), float32 so that
    the two roundings agree."""
    from gearterm.backends.decoder import Shape, rotate, tile_rotary

    @triton.jit
    def epilogue(y_ptr, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, positions, Q_ROWS: tl.constexpr,
                 KV_ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, ROTARY_DIM: tl.constexpr):  # fmt: skip
        row = tl.program_id(0) * 16
        first, second = tl.load(y_ptr + row + tl.arange(0, 8)), tl.load(y_ptr + row + 8 + tl.arange(0, 8))
        triton_gemv_qkv._write_qkv(first, second, row, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, positions,
                                   Q_ROWS, KV_ROWS, HEAD_DIM, ROTARY_DIM, 8)  # fmt: skip

    s = Shape("phi3", 10, 16, 24, 1, 3, 2, 128, 1e-5, "silu", rotary_dim=rotary_dim, rotary_tiles=True)
    torch.manual_seed(rotary_dim)
    y = tile_rotary(torch.randn(3 * 128 + 2 * 2 * 128), s)  # a GEMV's output, q and k rows tiled
    angles = torch.randn(rotary_dim // 2)
    cos, sin = torch.cat([angles.cos()] * 2), torch.cat([angles.sin()] * 2)
    positions, pos = 8, 5
    k_cache, v_cache = torch.randn(2, 2, positions, 128).unbind(0)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    q = torch.empty(3 * 128)
    epilogue[(y.numel() // 16,)](y, q, cos, sin, torch.tensor([pos]), k_cache, v_cache, positions, Q_ROWS=384,
                                 KV_ROWS=256, HEAD_DIM=128, ROTARY_DIM=rotary_dim)  # fmt: skip
    q_rows, k_rows, v_rows = y.split([384, 256, 256])
    expected_q, expected_k = (rotate(t.view(1, -1, 128), cos[None], sin[None], tiled=True)[0] for t in (q_rows, k_rows))
    torch.testing.assert_close(q.view(3, 128), expected_q)
    torch.testing.assert_close(k_cache[:, pos], expected_k)
    assert torch.equal(v_cache[:, pos], v_rows.view(2, 128))
    k_before[:, pos], v_before[:, pos] = k_cache[:, pos], v_cache[:, pos]
    assert torch.equal(k_cache, k_before) and torch.equal(v_cache, v_before)


@pytest.mark.parametrize("rotary_dim", [32, 16], ids=["all-rotate", "partial"])
def test_the_high_gears_qkv_gemv_rotates_and_writes_as_the_decoder_does(rotary_dim):
    """The experiment QKV_EPILOGUE in the high gear (triton_gemv_qkv.gemv_f16_qkv: gearterm's own
    16-bit GEMV, programs of 4 rows and their 4 partners), whole, in float16: q is the decoder's
    rotation of the GEMV's rows, the cache holds the rotated k and the v rows at the position, to a
    rounding (the kernel rotates in float32), and nothing else of the cache is written."""
    from gearterm.backends.decoder import Shape, rotate, tile_rotary

    s = Shape("llama", 10, 512, 24, 1, 4, 2, 32, 1e-5, "silu", rotary_dim=rotary_dim, rotary_tiles=True)
    torch.manual_seed(rotary_dim)
    weight = tile_rotary(torch.randn(4 * 32 + 2 * 2 * 32, 512) * 0.05, s).half()
    x = torch.randn(1, 512).half()
    angles = torch.randn(rotary_dim // 2)
    cos, sin = (torch.cat([f(angles)] * 2).half() for f in (torch.cos, torch.sin))
    positions, pos = 8, 3
    k_cache, v_cache = torch.randn(2, 2, positions, 32).half().unbind(0)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    q = triton_gemv_qkv.gemv_f16_qkv(x, weight, cos, sin, torch.tensor([pos]), k_cache, v_cache, 128, rotary_dim)
    y = (x.float() @ weight.float().T).half().float()
    q_rows, k_rows, v_rows = y.split([128, 64, 64], -1)
    cos32, sin32 = cos[None].float(), sin[None].float()
    expected_q, expected_k = (rotate(t.view(1, -1, 32), cos32, sin32, tiled=True)[0] for t in (q_rows, k_rows))
    ulp = 2.0**-10 * y.abs().max()
    for got, expected in ((q.view(4, 32), expected_q), (k_cache[:, pos], expected_k), (v_cache[:, pos], v_rows.view(2, 32))):
        assert (got.float() - expected).abs().max() <= 2 * ulp
    k_before[:, pos], v_before[:, pos] = k_cache[:, pos], v_cache[:, pos]
    assert torch.equal(k_cache, k_before) and torch.equal(v_cache, v_before)


def test_cpu_layers_keep_the_reference_layout():
    from gearterm.backends.geared_linear import GearedLinear
    from gearterm.kernels.gear import GearSelector

    layer = GearedLinear(torch.nn.Linear(40, 6), GearSelector())
    assert layer.h_codes.dtype == torch.uint8 and not isinstance(layer.planes, WordPlanes)


@pytest.mark.parametrize("width, dtype", [(64, torch.float32), (300, torch.float16), (1, torch.float32)])
def test_fused_rms_norm_matches_transformers(width, dtype):
    """The one-kernel RMSNorm (what the decoder's RMSNorm runs on a GPU) against
    transformers' own module."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(width)
    norm = LlamaRMSNorm(width, eps=1e-5)
    norm.weight.data = torch.randn(width) * 0.1 + 1
    norm = norm.to(dtype)
    x = torch.randn(3, 2, width, dtype=dtype)
    expected = norm(x)
    got = triton_rmsnorm.rms_norm(x, norm.weight, 1e-5)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    ulp = 1e-6 if dtype == torch.float32 else 2e-3  # one rounding of the 16-bit output
    assert torch.allclose(got, expected, rtol=ulp, atol=ulp)
    reference = triton_rmsnorm.rms_norm_reference(x, norm.weight, 1e-5)
    assert torch.allclose(reference, expected)


@pytest.mark.parametrize("gear", GEARS, ids=lambda g: g.label)
def test_compiled_model_sees_one_gear_operator(gear):
    """Under torch.compile the gear matmul is one operator: the whole function traces with no
    graph break (fullgraph) and gives the kernel's own result."""
    nw, planes = planes_for(16, 64, seed=3)
    x = torch.randn(1, 64)
    compiled = torch.compile(lambda x: geared_matmul(x, planes, gear) * 2.0, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), gear_matmul(x, planes, gear) * 2.0, rtol=0, atol=0)


@pytest.mark.parametrize(
    "heads, kv_heads, length, dim, dtype",
    [
        (8, 2, 75, 16, torch.float16),  # Llama-3's 4 query heads a key/value head; 5 slices, the last partial
        (6, 2, 40, 8, torch.float32),  # 3 heads a group, head size 8 (stories260K's): both padded
        (4, 4, 20, 24, torch.float32),  # no grouping, a partial slice, head size not a power of two
    ],
)
@pytest.mark.parametrize("spread", [64, 2], ids=["slices-fixed", "slices-grow"])
def test_decode_attention_matches_reference(heads, kv_heads, length, dim, dtype, spread, monkeypatch):
    """Every position a decode step meets in a static cache: early (most slices past it), in
    the last slice, and with a sliding window that leaves whole slices before its start; and a
    verify pass's 5 consecutive queries, each of which must see only its own prefix (the
    reference masks each on its own, so a key leaked to an earlier query fails). The keys no
    query may see hold NaN: the kernels never read them (a slice outside the visible
    range exits, the merge skips it). k and v are strided views, as the cache's tensors are.
    With a spread of 2, slices double as the filled positions pass 32, 64 and 128: the merge must
    read them at the span the attention used."""
    from gearterm.kernels import decode_attention as module
    from gearterm.kernels.decode_attention import decode_attention, decode_attention_reference, visible_keys

    # Small slices, steps and merges (the interpreter is slow): several of each at these lengths.
    monkeypatch.setattr(module, "SLICE_POSITIONS", 16)
    monkeypatch.setattr(module, "BLOCK_POSITIONS", 8)
    monkeypatch.setattr(module, "MERGE_SLICES", 2)
    monkeypatch.setattr(module, "SPREAD", spread)
    torch.manual_seed(heads * length)
    cases = [(length // 3, None), (length - 1, None), (length - 1, 20), (length // 2, 9)]
    # One position (a step), and 5 (a verify pass: each query sees its own prefix, through a
    # slice boundary and a window's start).
    for queries, (at, window) in [(1, case) for case in cases] + [(5, (length - 5, None)), (5, (14, None)), (5, (length // 2, 9))]:
        q = torch.randn(queries, heads, dim).to(dtype)
        pos = torch.tensor([at])
        cache = torch.randn(2, kv_heads, length + 3, dim).to(dtype)
        cache[:, :, :length][:, :, ~visible_keys(pos + queries - 1, window and window + queries - 1, length)] = float("nan")
        k, v = cache[0, :, :length], cache[1, :, :length]
        got = decode_attention(q, k, v, pos, window, dim**-0.5)
        expected = decode_attention_reference(q, k.nan_to_num(), v.nan_to_num(), pos, window, dim**-0.5)
        assert got.shape == q.shape and got.dtype == dtype and torch.isfinite(got).all(), (queries, at, window)
        tolerance = 1e-5 if dtype == torch.float32 else 2e-3
        assert torch.allclose(got.float(), expected.float(), atol=tolerance, rtol=tolerance), (queries, at, window)
