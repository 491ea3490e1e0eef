"""bench kernels' byte-limit share (the timing itself needs a GPU: the device runs it)."""

from gearterm.bench.kernels import add_limit_shares, print_table


def row(impl, batch, tbps):
    return {"shape": "4096x4096", "batch": batch, "impl": impl, "us": 1.0, "tbps": tbps, "max_abs_err": 0.0,
            "speedup_vs_fp16": 1.0}  # fmt: skip


def test_shares_are_over_the_fastest_batch_one_fp16_read(capsys):
    rows = [row("fp16", 1, 3.0), row("fp16", 1, 4.0), row("low", 1, 2.0), row("fp16", 16, 5.0)]
    assert add_limit_shares(rows) == 4.0
    assert [r["limit_share"] for r in rows] == [0.75, 1.0, 0.5, 1.25]
    print_table(rows, "a GPU")
    assert "50%" in capsys.readouterr().out


def test_no_fp16_at_batch_one_gives_no_shares(capsys):
    rows = [row("low", 1, 2.0)]
    assert add_limit_shares(rows) is None and "limit_share" not in rows[0]
    print_table(rows, "a GPU")
    assert "n/a" in capsys.readouterr().out
