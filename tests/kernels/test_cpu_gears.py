"""The CPU gear kernel (AVX2, compiled on this machine) against kernels.nested's reference."""

import pytest
import torch

from gearterm.kernels import cpu_gears
from gearterm.kernels.gear import Gear
from gearterm.kernels.matmul import CPU_KERNEL_ROWS, for_cpu_kernel, geared_matmul
from gearterm.kernels.nested import dequantize, pack, reference_matmul

pytestmark = pytest.mark.skipif(not cpu_gears.available(), reason="no AVX2 x86 CPU or no compiler for the kernel")


@pytest.mark.parametrize("out_features, in_features", [(1536, 576), (576, 1536), (48, 64), (33, 200), (7, 4096)])
@pytest.mark.parametrize("rows", [1, 3, CPU_KERNEL_ROWS])
def test_kernel_matches_the_reference_in_both_gears(out_features, in_features, rows):
    torch.manual_seed(out_features + in_features)
    nw = for_cpu_kernel(pack(torch.randn(out_features, in_features) * 0.05))
    assert nw.h_scale.dtype == torch.float32
    x = torch.randn(rows, in_features)
    for gear in (Gear.LOW, Gear.MID):
        got = cpu_gears.gear_matmul(x, nw, gear)
        expected = reference_matmul(x, nw, gear)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
        # The matmul entry point takes the kernel for a few positions, the reference for more.
        torch.testing.assert_close(geared_matmul(x, nw, gear), expected, rtol=1e-5, atol=1e-4)


def test_float32_scales_are_the_same_values():
    nw = pack(torch.randn(64, 256))
    wide = for_cpu_kernel(nw)
    for gear in (Gear.LOW, Gear.MID):
        assert torch.equal(dequantize(nw, gear), dequantize(wide, gear))


def test_a_group_the_loads_do_not_tile_keeps_the_reference():
    nw = pack(torch.randn(16, 40))  # one group of 40 channels: not a whole number of 32
    assert not cpu_gears.fits(nw) and for_cpu_kernel(nw) is nw


def test_each_torch_install_builds_the_kernel_under_its_own_name(monkeypatch):
    """torch keeps one build an extension name and rebuilds it where the last build came from
    another torch install. With one name for all, a checkout's tests that loaded a model after
    another checkout's run waited 18-34 s for the rebuild, and the app's tests timed out (30 s)."""
    name = cpu_gears.extension_name()
    assert name.isidentifier() and name == cpu_gears.extension_name()  # a module name, the same each time
    monkeypatch.setattr(torch, "__file__", "/another/env/site-packages/torch/__init__.py")
    assert cpu_gears.extension_name() != name


def test_a_build_of_an_earlier_process_is_told_from_none(monkeypatch, tmp_path):
    """The load says "compiling ... about a minute" only where no earlier process built the
    kernel; a build already in torch's extensions folder loads in seconds and is named so."""
    assert cpu_gears.compiled_before()  # the module-level available() built or loaded it
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # a machine that never built it
    assert not cpu_gears.compiled_before()
