"""bench decode --profile's split of a step's kernels by what they do (the profiling itself
needs a GPU: bench decode runs it on the device)."""

from gearterm.bench.step_split import REST, describe, part_of


def test_kernels_fall_in_their_parts():
    for gear_gemv in ("_gemv_mma_kernel", "_gemv_qkv_kernel", "_gemv_tma_kernel", "_gemv_f16_kernel", "_gemv_kernel"):
        assert part_of(gear_gemv) == "gear GEMVs"
    assert part_of("void gemv2T_kernel_val<int, int, __half, __half, float, 128, 16, 4, 4, false>") == "cuBLAS (16-bit weights)"
    assert part_of("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize64x64x64") == "cuBLAS (16-bit weights)"
    assert part_of("nvjet_sm90_hsh_64x8_64x16_2x1_v_bz_splitK_TNT") == "cuBLAS (16-bit weights)"
    assert part_of("attend_slices") == "attention"
    assert part_of("merge_slices") == "attention"
    assert part_of("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0") == REST


def test_a_split_says_what_each_part_took_and_none_says_why():
    rest = {"triton_per_fused_add_mean_mul_pow_rsqrt_0": 0.2, "triton_poi_fused_add_1": 0.1}
    split = {"gear GEMVs": 1.5, "attention": 0.2, REST: 0.3, "kernels": 2.0, "wall": 2.2, "gaps": 0.2, "largest of the rest": rest}
    line = describe("low", split)
    assert "gear GEMVs 1.500" in line and "cuBLAS (16-bit weights) 0.000" in line and "gaps 0.200" in line
    assert "largest of the rest: triton_per_fused_add_mean_mul_pow_rsqrt_0 0.200, triton_poi_fused_add_1 0.100" in line
    assert "overlapped" not in line and "overlapped" in describe("low", {**split, "gaps": -0.3})
    assert "n/a" in describe("low", {})
