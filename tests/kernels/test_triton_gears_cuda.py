"""The compiled gear kernels on a GPU against gearterm.kernels.nested's reference (the same shapes as
the interpreter tests plus model-sized ones, in every input dtype), and the CUDA-graph
decoder against the eager one. Skipped without CUDA."""

import importlib

import pytest
import torch

from gearterm.kernels.gear import Gear

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True, scope="module")
def _compiled_kernels():
    """The interpreter tests may have imported the kernels interpreted in this process."""
    from triton.runtime.interpreter import InterpretedFunction

    for name, kernel in [
        ("gearterm.kernels.triton_gears", "_gemv_kernel"),
        ("gearterm.kernels.triton_gemv_mma", "_gemv_mma_kernel"),
        ("gearterm.kernels.triton_rmsnorm", "_rms_norm_kernel"),
        ("gearterm.kernels.triton_decode_attention", "attend_slices"),
        ("gearterm.kernels.triton_gemv_f16", "_gemv_f16_kernel"),
        ("gearterm.kernels.triton_gemv_qkv", "_gemv_qkv_kernel"),
    ]:
        module = importlib.import_module(name)
        if isinstance(getattr(module, kernel), InterpretedFunction):
            importlib.reload(module)

SHAPES = [(5, 37), (13, 300), (7, 100), (3, 1), (4096, 4096), (1024, 14336)]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}  # relative to the output's max


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("batch", [1, 2, 33, 130])
def test_compiled_kernels_match_reference(shape, batch):
    from gearterm.kernels.matmul import geared_matmul
    from gearterm.kernels.nested import pack, reference_matmul
    from gearterm.kernels.word_planes import to_word_planes

    torch.manual_seed(batch)
    nw = pack(torch.randn(*shape, device="cuda") * 0.02)
    planes = to_word_planes(nw)
    for dtype, rtol in TOLERANCE.items():
        x = torch.randn(batch, shape[1], device="cuda", dtype=dtype)
        for gear in (Gear.LOW, Gear.MID):
            y = geared_matmul(x, planes, gear)
            ref = reference_matmul(x.double(), nw, gear)
            assert y.dtype == dtype and torch.isfinite(y).all()
            err = (y.double() - ref).abs().max().item()
            assert err <= rtol * ref.abs().max().item(), (dtype, gear, err)


@pytest.mark.parametrize("shape", [(32, 512), (48, 1536), (6144, 4096), (4096, 14336)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_tensor_core_gemv_matches_reference_at_every_split(shape, dtype):
    """Batch 1 of 16-bit x in groups of 128 takes the mma.sync GEMV; each way of splitting
    `in` over warps, with x read ahead or not, the codes asked into L2 or not and the next step's
    loads pinned or not (PIN 1 and 2), gives the reference, as closely as the CUDA-core kernel does."""
    from gearterm.kernels import triton_gemv_mma
    from gearterm.kernels.nested import pack, reference_matmul
    from gearterm.kernels.triton_gears import gear_matmul
    from gearterm.kernels.word_planes import to_word_planes

    torch.manual_seed(shape[0])
    nw = pack(torch.randn(*shape, device="cuda") * 0.02)
    planes = to_word_planes(nw)
    x = torch.randn(1, shape[1], device="cuda", dtype=dtype) * 2
    assert triton_gemv_mma.fits(x, planes) and not triton_gemv_mma.fits(x.float(), planes)
    for gear in (Gear.LOW, Gear.MID):
        ref = reference_matmul(x.double(), nw, gear)
        cuda_cores = (gear_matmul(x, planes, gear, {"BLOCK_N": 8}).double() - ref).abs().max().item()
        for ks in (1, 2, 4, 8):
            for ahead, prefetch, pin in [(False, 0, 0), (True, 0, 0), (False, 2, 0), (True, 2, 0), (False, 0, 1), (False, 0, 2)]:  # fmt: skip
                if triton_gemv_mma.whole_steps(planes.groups, ks):
                    y = triton_gemv_mma.gemv_mma(x, planes, gear, ks, ahead, prefetch, pin)
                    err = (y.double() - ref).abs().max().item()
                    bound = max(1.5 * cuda_cores, TOLERANCE[dtype] * ref.abs().max().item())
                    assert err <= bound, (gear, ks, ahead, prefetch, pin, err)


@pytest.mark.parametrize("shape", [(32, 512), (6144, 4096), (4096, 14336)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_bulk_copy_gemv_matches_reference_at_every_split_and_depth(shape, dtype):
    """The experiment TMA (gearterm.kernels.triton_gemv_tma: the codes through a ring of
    shared-memory buffers by bulk copies), each split of `in` over warps and 2-4 pipeline stages,
    gives the reference as closely as the mma.sync GEMV it copies does, and its epilogues (the
    residual added, SiLU(gate) * up) the same bits as that GEMV's. Hopper or later."""
    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("bulk copies (TMA) need a Hopper GPU or later")
    from gearterm.kernels import triton_gemv_mma, triton_gemv_tma
    from gearterm.kernels.nested import pack, reference_matmul
    from gearterm.kernels.triton_gears import gear_matmul
    from gearterm.kernels.word_planes import to_word_planes

    torch.manual_seed(shape[0])
    nw = pack(torch.randn(*shape, device="cuda") * 0.02)
    planes = to_word_planes(nw)
    x = torch.randn(1, shape[1], device="cuda", dtype=dtype) * 2
    for gear in (Gear.LOW, Gear.MID):
        ref = reference_matmul(x.double(), nw, gear)
        for ks in (1, 2, 4):
            if triton_gemv_mma.whole_steps(planes.groups, ks):
                mma = (triton_gemv_mma.gemv_mma(x, planes, gear, ks, False, 0, 0).double() - ref).abs().max().item()
                bound = max(1.5 * mma, TOLERANCE[dtype] * ref.abs().max().item())
                for stages in (2, 3, 4):
                    err = (gear_matmul(x, planes, gear, {"KS": ks, "TMA": stages}).double() - ref).abs().max().item()
                    assert err <= bound, (gear, ks, stages, err, mma)
        # Same products, group by group, as the mma.sync GEMV: its epilogues give the same bits.
        residual = torch.randn(1, shape[0], device="cuda", dtype=dtype)
        tma = triton_gemv_tma.gemv_tma(x, planes, gear, residual=residual)
        assert torch.equal(tma, triton_gemv_mma.gemv_mma(x, planes, gear, ahead=False, prefetch=0, pin=0, residual=residual))
        tma = triton_gemv_tma.gemv_tma(x, planes, gear, silu_times_up=True)
        assert torch.equal(tma, triton_gemv_mma.gemv_mma(x, planes, gear, ahead=False, prefetch=0, pin=0, silu_times_up=True))


@pytest.mark.parametrize("shape", [(2048, 512), (28672, 4096)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_gate_up_gemv_writes_silu_gate_times_up_as_eager_torch_computes_it(shape, dtype):
    """An MLP's gate and up rows in tiles of 8 (a small MLP's, with x read ahead, and
    Llama-3-8B's): the GEMV's SiLU(gate) * up equals F.silu(gate) * up of its own products, every
    gear, eagerly and as one operator of a compiled graph; nothing but one row on a GPU takes it."""
    torch._dynamo.reset()  # one compiled function a parametrization: dynamo's recompile limit is 8
    import torch.nn.functional as F

    from gearterm.backends.decoder import GATE_TILE, tile_gate_up
    from gearterm.kernels.matmul import geared_matmul, silu_times_up_matmul
    from gearterm.kernels.nested import pack
    from gearterm.kernels.word_planes import to_word_planes

    torch.manual_seed(shape[0])
    planes = to_word_planes(pack(tile_gate_up(torch.randn(*shape, device="cuda") * 0.05)))
    x = torch.randn(1, shape[1], device="cuda", dtype=dtype)
    compiled = torch.compile(lambda x, gear: silu_times_up_matmul(x, planes, gear) * 2.0, fullgraph=True)
    for gear in (Gear.LOW, Gear.MID):
        tiles = geared_matmul(x, planes, gear).unflatten(-1, (-1, 2, GATE_TILE))
        gate, up = tiles[..., 0, :].flatten(-2), tiles[..., 1, :].flatten(-2)
        expected = F.silu(gate) * up
        fused = silu_times_up_matmul(x, planes, gear)
        assert fused.shape == (1, shape[0] // 2) and fused.dtype == dtype
        # exp on the GPU's fast unit against CUDA's expf: SiLU one rounding apart, and so the
        # product at most two (one element of 14336 in float16 on an H100)
        torch.testing.assert_close(fused, expected, rtol=2 ** -6 if dtype == torch.bfloat16 else 2 ** -9, atol=0)
        assert (fused == expected).float().mean() > 0.99
        torch.testing.assert_close(compiled(x, gear), fused * 2.0, rtol=0, atol=0)
    assert silu_times_up_matmul(x, planes, Gear.HIGH) is None
    assert silu_times_up_matmul(x.expand(2, -1).contiguous(), planes, Gear.LOW) is None
    assert silu_times_up_matmul(x.cpu(), planes, Gear.LOW) is None



@pytest.mark.parametrize("shape", [(576, 1536), (4096, 14336)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_down_gemv_adds_the_residual_as_eager_torch_does(shape, dtype):
    """SmolLM2's and Llama-3-8B's down projection: every gear's GEMV given the residual writes
    residual + its own products, bit for bit as eager adds them, eagerly and as one operator of a
    compiled graph; the high gear only where its GEMV is gearterm's own; one row on a GPU only."""
    torch._dynamo.reset()  # one compiled function a parametrization: dynamo's recompile limit is 8
    from gearterm.kernels.matmul import geared_matmul, plus_residual_matmul
    from gearterm.kernels.nested import pack
    from gearterm.kernels.triton_gemv_f16 import gemv_f16
    from gearterm.kernels.word_planes import to_word_planes

    torch.manual_seed(shape[1])
    planes = to_word_planes(pack((torch.randn(*shape, device="cuda") * 0.02).to(dtype)))
    x = torch.randn(1, shape[1], device="cuda", dtype=dtype)
    residual = torch.randn(1, shape[0], device="cuda", dtype=dtype) * 4
    compiled = torch.compile(lambda x, r, gear: plus_residual_matmul(x, planes, gear, r, own_high=True) * 2.0, fullgraph=True)
    for gear in Gear:
        products = gemv_f16(x, planes.weight) if gear == Gear.HIGH else geared_matmul(x, planes, gear)
        added = plus_residual_matmul(x, planes, gear, residual, own_high=True)
        assert torch.equal(added, residual + products), gear
        torch.testing.assert_close(compiled(x, residual, gear), added * 2.0, rtol=0, atol=0)
    assert plus_residual_matmul(x, planes, Gear.HIGH, residual, own_high=False) is None
    assert plus_residual_matmul(x.expand(2, -1).contiguous(), planes, Gear.LOW, residual.expand(2, -1)) is None
    assert plus_residual_matmul(x, planes, Gear.LOW, residual.float()) is None


@pytest.mark.parametrize("heads", [(32, 8, 4096), (4, 2, 512)], ids=["llama3-8b", "small"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_the_qkv_gemv_rotates_q_and_k_and_writes_the_cache_as_the_decoder_does(heads, dtype):
    """The experiment QKV_EPILOGUE's GEMV in every gear (the high gear's own), q, k and v stacked in
    rotary tiles, heads of 128: q is the decoder's rotation of the GEMV's own q rows, and the cache
    at the position holds the rotated k and the v rows, to one rounding (the kernel rotates in
    float32, eager in 16 bits); every other position of the cache is left as it was. Eagerly and
    as one operator of a compiled graph, bit for bit; cuBLAS's high gear and several rows are left
    to the decoder."""
    torch._dynamo.reset()
    from functools import partial

    from gearterm.backends.decoder import Shape, rotate, tile_rotary
    from gearterm.kernels.matmul import geared_matmul, rotated_into_cache_matmul
    from gearterm.kernels.triton_gemv_f16 import gemv_f16
    from gearterm.kernels.nested import pack
    from gearterm.kernels.word_planes import to_word_planes

    num_heads, kv_heads, hidden = heads
    s = Shape("llama", 10, hidden, 16, 1, num_heads, kv_heads, 128, 1e-5, "silu", rotary_dim=128, rotary_tiles=True)
    q_rows, kv_rows, positions, pos = num_heads * 128, kv_heads * 128, 64, 37
    torch.manual_seed(num_heads)
    planes = to_word_planes(pack(tile_rotary(torch.randn(q_rows + 2 * kv_rows, hidden, device="cuda") * 0.02, s).to(dtype)))
    x = torch.randn(1, hidden, device="cuda", dtype=dtype)
    angles = pos * 10000 ** (-torch.arange(64, device="cuda") / 64)
    cos, sin = (torch.cat([f(angles)] * 2).to(dtype) for f in (torch.cos, torch.sin))
    at = torch.tensor([pos], device="cuda")
    caches = [torch.randn(kv_heads, positions, 128, device="cuda", dtype=dtype) for _ in range(2)]
    fused_qkv = partial(
        rotated_into_cache_matmul, x, planes, cos=cos, sin=sin, pos=at, q_rows=q_rows, rotary_dim=128, own_high=True
    )
    compiled = torch.compile(lambda gear, k, v: fused_qkv(gear, k_cache=k, v_cache=v) * 2.0, fullgraph=True)
    for gear in Gear:
        products = gemv_f16(x, planes.weight) if gear == Gear.HIGH else geared_matmul(x, planes, gear)
        q, k, v = products.split([q_rows, kv_rows, kv_rows], -1)
        q, k = (rotate(t.view(1, -1, 128), cos[None], sin[None], tiled=True) for t in (q, k))
        k_cache, v_cache = (c.clone() for c in caches)
        fused = fused_qkv(gear, k_cache=k_cache, v_cache=v_cache)
        assert fused.shape == (1, q_rows) and fused.dtype == dtype
        ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10  # at 1: the eager rotation's three roundings
        for got, expected in ((fused.view(-1, 128), q[0]), (k_cache[:, pos], k[0])):
            assert (got.float() - expected.float()).abs().max() <= 2 * ulp * expected.float().abs().max()
        assert torch.equal(v_cache[:, pos], v.view(kv_heads, 128))
        others = torch.arange(positions, device="cuda") != pos
        assert torch.equal(k_cache[:, others], caches[0][:, others]) and torch.equal(v_cache[:, others], caches[1][:, others])
        k_again, v_again = (c.clone() for c in caches)
        torch.testing.assert_close(compiled(gear, k_again, v_again), fused * 2.0, rtol=0, atol=0)
        assert torch.equal(k_again, k_cache) and torch.equal(v_again, v_cache)
    assert rotated_into_cache_matmul(x, planes, Gear.HIGH, cos, sin, at, *caches, q_rows, 128) is None  # cuBLAS's
    assert rotated_into_cache_matmul(x.expand(2, -1).contiguous(), planes, Gear.LOW, cos, sin, at, *caches, q_rows, 128) is None


def _against_cublas(shape, dtype):
    """w, x, the float64 product, and the error bound: cuBLAS's own error (1.5x), or one rounding."""
    import torch.nn.functional as F

    torch.manual_seed(shape[1])
    w = (torch.randn(*shape, device="cuda") * 0.02).to(dtype)
    x = torch.randn(1, shape[1], device="cuda", dtype=dtype)
    ref = x.double() @ w.double().T
    cublas = (F.linear(x, w).double() - ref).abs().max().item()
    return w, x, ref, max(1.5 * cublas, TOLERANCE[dtype] * ref.abs().max().item())


@pytest.mark.parametrize("shape", [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_high_gear_own_gemv_is_as_close_as_cublas_at_the_decoders_shapes(shape, dtype):
    """The high gear's own batch-1 GEMV, default blocks: as close to the float64 product as
    cuBLAS's F.linear, within one rounding of the output. It takes one row of the weight's 16-bit
    type and nothing else."""
    from gearterm.kernels import triton_gemv_f16

    w, x, ref, bound = _against_cublas(shape, dtype)
    assert triton_gemv_f16.fits(x, w)
    assert not triton_gemv_f16.fits(x.expand(2, -1).contiguous(), w) and not triton_gemv_f16.fits(x.float(), w.float())
    y = triton_gemv_f16.gemv_f16(x, w)
    assert y.shape == (1, shape[0]) and y.dtype == dtype
    assert (y.double() - ref).abs().max().item() <= bound


def test_high_gear_own_gemv_is_as_close_as_cublas_at_every_swept_block_size():
    """Every block size `bench kernels --sweep` times (one shape: each is a compile of its own)."""
    from gearterm.bench.kernels import sweep_configs
    from gearterm.kernels import triton_gemv_f16

    w, x, ref, bound = _against_cublas((4096, 14336), torch.float16)
    for cfg in sweep_configs("high", 1):
        assert (triton_gemv_f16.gemv_f16(x, w, cfg).double() - ref).abs().max().item() <= bound, cfg


def test_high_gear_own_gemv_is_one_operator_under_compile():
    """A geared layer asked for the own GEMV runs it as one operator of a compiled graph
    (fullgraph), bit for bit the eager kernel's; more rows stay cuBLAS's."""
    import torch.nn.functional as F

    from gearterm.kernels import matmul, triton_gemv_f16

    w = torch.randn(256, 1024, device="cuda", dtype=torch.float16) * 0.02
    x = torch.randn(1, 1024, device="cuda", dtype=torch.float16)
    compiled = torch.compile(lambda x: matmul.high_gear_matmul(x, w, own=True) * 2.0, fullgraph=True)
    torch.testing.assert_close(compiled(x), triton_gemv_f16.gemv_f16(x, w) * 2.0, rtol=0, atol=0)
    rows = torch.randn(3, 1024, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(matmul.high_gear_matmul(rows, w, own=True), F.linear(rows, w), rtol=0, atol=0)


def test_a_decoder_with_the_own_high_gemv_gives_cublas_logits(tmp_path, monkeypatch):
    """A random Llama in float16 whose every projection the own GEMV takes (hidden 512, MLP 1024):
    replayed in the high gear through it, each step's logits are those of the same decoder through
    cuBLAS, to float16 rounding, on the same tokens (cuBLAS's greedy ones)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from gearterm.backends.cuda_decoder import GraphDecoder
    from gearterm.backends.decoder_weights import load_decoder
    from gearterm.backends.geared_linear import GearedLinear, gear_decoder_layers
    from gearterm.kernels import matmul, triton_gemv_f16
    from gearterm.kernels.gear import GearSelector

    config = LlamaConfig(vocab_size=512, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    steps = {}
    for gemv in ("cublas", "own"):
        monkeypatch.setattr(matmul, "HIGH_GEMV", gemv)
        model = load_decoder(tmp_path, config, torch.float16, "cuda")
        selector = GearSelector(Gear.HIGH)
        gear_decoder_layers(model.layers, selector)
        layers = [m for m in model.layers.modules() if isinstance(m, GearedLinear)]
        x = torch.zeros(1, 512, device="cuda", dtype=torch.float16)
        assert all(m.own_high_gemv == (gemv == "own") for m in layers)
        assert all(triton_gemv_f16.fits(x.new_zeros(1, m.in_features), m.weight) for m in layers)
        decoder = GraphDecoder(model, selector, 64)
        logits, steps[gemv] = decoder.prefill([1, 400, 34])[-1], []
        for i in range(24):
            token = logits.argmax(-1) if gemv == "cublas" else torch.tensor(steps["cublas"][i][0], device="cuda")
            logits, _ = decoder.step(token)
            steps[gemv].append((int(token), logits.float()))
    for (token, cublas), (same, own) in zip(steps["cublas"], steps["own"]):
        assert same == token
        assert (own - cublas).abs().max().item() <= 1e-2 * cublas.abs().max().item()



def test_the_mlp_epilogues_in_the_gemvs_change_no_token(tmp_path, monkeypatch):
    """A random Llama in float16 whose MLP the gear GEMVs' epilogues take (hidden 512, MLP 1024):
    replayed as graphs in the low and mid gears, with SiLU(gate) * up and the residual add written
    by the GEMVs, each step's logits are those of the same decoder computing them after the GEMVs,
    to float16 rounding, on the same tokens (the unfused decoder's greedy ones)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from gearterm.backends import geared_linear
    from gearterm.backends.cuda_decoder import GraphDecoder
    from gearterm.backends.decoder_weights import load_decoder
    from gearterm.kernels.gear import GearSelector

    config = LlamaConfig(vocab_size=512, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    written, steps = set(), {}
    for fused in (False, True):
        for name in ("silu_times_up_matmul", "plus_residual_matmul"):
            kernel = getattr(geared_linear, name)

            def fused_or_none(*args, kernel=kernel, fused=fused, name=name, **kwargs):
                y = kernel(*args, **kwargs) if fused else None
                if y is not None:
                    written.add(name)
                return y

            monkeypatch.setattr(geared_linear, name, fused_or_none)
        model = load_decoder(tmp_path, config, torch.float16, "cuda")
        selector = GearSelector(Gear.LOW)
        geared_linear.gear_decoder_layers(model.layers, selector)
        graphs = GraphDecoder(model, selector, 64)
        steps[fused] = _replayed_steps(graphs, selector, (Gear.LOW, Gear.MID), steps.get(False))
        monkeypatch.undo()
    assert written == {"silu_times_up_matmul", "plus_residual_matmul"}  # in the fused run, the GEMVs did
    _same_tokens_close_logits(steps[False], steps[True])


def _replayed_steps(graphs, selector, gears, forced: dict | None = None) -> dict:
    """Each gear's 12 decode steps after a 3-token prompt, replayed as graphs: (token, logits) a
    step, the tokens greedy, or `forced`'s (another run's) where given."""
    steps = {}
    for gear in gears:
        selector.gear = gear
        logits, steps[gear] = graphs.prefill([1, 400, 34])[-1], []
        for i in range(12):
            token = torch.tensor(forced[gear][i][0], device="cuda") if forced else logits.argmax(-1)
            logits, _ = graphs.step(token)
            steps[gear].append((int(token), logits.float()))
    return steps


def _same_tokens_close_logits(plain: dict, fused: dict) -> None:
    """Two runs' steps (_replayed_steps, the second forced to the first's tokens): the logits of
    each step the same to float16 rounding."""
    for gear in plain:
        for (token, a), (same, b) in zip(plain[gear], fused[gear]):
            assert same == token
            assert (b - a).abs().max().item() <= 1e-2 * a.abs().max().item()


def test_the_qkv_epilogue_changes_no_token(tmp_path, monkeypatch):
    """The experiment QKV_EPILOGUE on a random Llama in float16 (heads of 128, hidden 512): replayed
    as graphs in every gear (the high gear's with gearterm's own GEMV, on Hopper), with q and k
    rotated and k and v written into the cache by the q/k/v GEMV, each step's logits are those of
    the same decoder rotating and writing after the GEMV, to float16 rounding, on the same tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from gearterm.backends import decoder, geared_linear
    from gearterm.backends.cuda_decoder import GraphDecoder
    from gearterm.backends.decoder_weights import load_decoder
    from gearterm.kernels.gear import GearSelector

    config = LlamaConfig(vocab_size=512, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    monkeypatch.setattr(decoder, "QKV_EPILOGUE", True)
    fused_matmul, written, steps = geared_linear.rotated_into_cache_matmul, [], {}
    for fused in (False, True):

        def fused_or_none(*args, fused=fused, **kwargs):
            if not fused:
                return None
            y = fused_matmul(*args, **kwargs)
            written.append(y is not None)
            return y

        monkeypatch.setattr(geared_linear, "rotated_into_cache_matmul", fused_or_none)
        model = load_decoder(tmp_path, config, torch.float16, "cuda")
        assert model.shape.rotary_tiles
        selector = GearSelector(Gear.LOW)
        geared_linear.gear_decoder_layers(model.layers, selector)
        steps[fused] = _replayed_steps(GraphDecoder(model, selector, 64), selector, Gear, steps.get(False))
    assert written and all(written)  # in the fused run, every step's q/k/v GEMV did, in every gear
    _same_tokens_close_logits(steps[False], steps[True])


def test_graph_decoder_replays_the_eager_tokens(stories_hf):
    from transformers import AutoConfig

    from gearterm.backends.cuda_decoder import GraphDecoder
    from gearterm.backends.decoder_weights import load_decoder
    from gearterm.backends.geared_linear import gear_decoder_layers
    from gearterm.backends.hf import EagerDecoder
    from gearterm.kernels.gear import GearSelector

    model = load_decoder(stories_hf, AutoConfig.from_pretrained(stories_hf), torch.float32, "cuda")
    selector = GearSelector(Gear.HIGH)
    gear_decoder_layers(model.layers, selector)
    tokens = {}
    for name, decoder in [("eager", EagerDecoder(model, 64)), ("graph", GraphDecoder(model, selector, 64))]:
        logits, tokens[name] = decoder.prefill([1, 400, 34])[-1], []
        for _ in range(16):
            token = logits.argmax(-1)
            tokens[name].append(int(token))
            logits, readings = decoder.step(token)
            assert int(readings[0]) == int(logits.argmax())
    assert tokens["graph"] == tokens["eager"]


def test_decode_attention_at_llama3_shape():
    """32 query heads on 8 key/value heads of 128, a 32,768-position cache: filled to 300, to
    the end, and through a 4,096-position window, for one query and for a verify pass's 9;
    what no query may see holds NaN."""
    from gearterm.kernels.decode_attention import decode_attention, decode_attention_reference, visible_keys

    torch.manual_seed(0)
    for queries, at, window in [(1, 299, None), (1, 32767, None), (1, 20000, 4096), (9, 32759, None), (9, 20000, 4096)]:
        q = torch.randn(queries, 32, 128, device="cuda", dtype=torch.float16)
        pos = torch.tensor([at], device="cuda")
        cache = torch.randn(2, 8, 32768, 128, device="cuda", dtype=torch.float16)
        last = pos + queries - 1
        cache[:, :, ~visible_keys(last, window and window + queries - 1, 32768)] = float("nan")
        got = decode_attention(q, cache[0], cache[1], pos, window, 128**-0.5)
        expected = decode_attention_reference(q, cache[0].nan_to_num(), cache[1].nan_to_num(), pos, window, 128**-0.5)
        assert torch.allclose(got.float(), expected.float(), atol=2e-3, rtol=2e-3), (queries, at, window)


@pytest.mark.parametrize("compile", [False, True], ids=["graphs", "compiled"])
def test_gpu_backend_greedy_equals_cpu(stories_hf, compile):
    """Forced high gear, greedy, float32: the GPU path (stacked projections, decode attention
    kernel, CUDA graphs, compiled or not) gives the CPU path's 200 tokens."""
    from gearterm.backends.base import GenerationParams, TokenEvent
    from gearterm.backends.gearbox import GearMode
    from gearterm.backends.hf import HFBackend

    params = GenerationParams(max_tokens=200, temperature=0.0, gear_mode=GearMode.HIGH)
    tokens = {}
    for device in ("cpu", "cuda"):
        backend = HFBackend(str(stories_hf), device=device, dtype="float32", gate=False, compile=compile)
        backend.load()
        backend.eos_ids = set()
        ids = backend.tokenizer("Once upon a time")["input_ids"]
        events = backend._generate(ids, params)
        tokens[device] = [e.token_id for e in events if isinstance(e, TokenEvent) and e.is_token]
    assert len(tokens["cuda"]) == 200 and tokens["cuda"] == tokens["cpu"]
