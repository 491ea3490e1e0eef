"""The NVML power meter: joules-per-token attribution on counter traces, and the "n/a" path."""

import json
import time
from pathlib import Path

import pytest

from gearterm.telemetry.power import CounterSample, EnergyAttribution, PowerMeter, attribute, attribute_window

TRACE = Path(__file__).parent / "data" / "h100_energy_trace.json"


def nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


def trace(*rows):
    """(seconds, joules, {gear: cumulative tokens}) rows as CounterSamples."""
    return [CounterSample(t, j, tokens) for t, j, tokens in rows]


def test_a_window_shares_its_joules_by_tokens_produced():
    start, end = trace((0.0, 100.0, {"low": 10, "high": 5}), (1.5, 130.0, {"low": 25, "high": 10}))
    window = attribute_window(start, end)
    # 30 J over 15 + 5 tokens: each token 1.5 J, whichever gear produced it.
    assert window.joules == {"low": 22.5, "high": 7.5}
    assert window.tokens == {"low": 15, "high": 5}
    assert window.joules_per_token_by_gear == {"low": 1.5, "high": 1.5}
    assert window.seconds == 1.5 and window.windows == 1 and window.idle_joules == 0


def test_windows_are_at_least_the_minimum_and_idle_ones_count_apart():
    samples = trace(
        (0.0, 0.0, {}),
        (0.5, 50.0, {"low": 10}),  # not a window yet: under one second
        (1.0, 100.0, {"low": 20}),  # window 1: 100 J, 20 low tokens
        (2.2, 400.0, {"low": 20, "high": 10}),  # window 2: 300 J, 10 high tokens
        (3.3, 450.0, {"low": 20, "high": 10}),  # window 3: idle, 50 J
        (3.9, 999.0, {"low": 90, "high": 10}),  # tail under a second: left out
    )
    totals = attribute(samples, min_window_s=1.0)
    assert totals.windows == 3
    assert totals.seconds == pytest.approx(3.3)
    assert totals.idle_joules == 50.0
    assert totals.joules_per_token_by_gear == {"low": 5.0, "high": 30.0}
    assert totals.joules_per_token == pytest.approx(400.0 / 30)
    assert attribute([], 1.0).joules_per_token is None


def test_attribution_adds_up():
    a = attribute_window(*trace((0, 0.0, {"mid": 0}), (1, 10.0, {"mid": 4})))
    b = attribute_window(*trace((1, 10.0, {"mid": 4}), (2, 30.0, {"mid": 6, "low": 8})))
    total = EnergyAttribution()
    total.add(a)
    total.add(b)
    assert total.tokens == {"mid": 6, "low": 8}
    assert total.joules == {"mid": pytest.approx(10 + 20 * 2 / 10), "low": pytest.approx(20 * 8 / 10)}
    assert total.windows == 2


def test_recorded_h100_trace():
    """A counter trace recorded by the meter (0.1 s samples) on an H100 80GB HBM3, 2026-11-22,
    by `gearterm bench gate --overhead --trace`: idle while the model was built, then the
    Llama-3-8B shape decoding with the gate off and on (tokens under "gate off" / "gate on")."""
    if not TRACE.exists():
        pytest.skip("no recorded trace")
    recorded = json.loads(TRACE.read_text())
    samples = [CounterSample(s["seconds"], s["joules"], s["tokens"]) for s in recorded["samples"]]
    totals = attribute(samples, min_window_s=1.0)
    first, last = samples[0], samples[-1]
    covered = [s for s in samples if s.seconds - first.seconds <= totals.seconds + 1e-9]
    # Every joule of the whole windows is attributed to a gear or counted idle, and every token too.
    assert sum(totals.joules.values()) + totals.idle_joules == pytest.approx(covered[-1].joules - first.joules)
    produced = {g: n - first.tokens.get(g, 0) for g, n in covered[-1].tokens.items()}
    assert totals.tokens == {g: n for g, n in produced.items() if n > 0}
    assert totals.seconds >= totals.windows * 1.0
    assert set(totals.joules_per_token_by_gear) == {"gate off", "gate on"}
    assert all(0 < j < 1000 for j in totals.joules_per_token_by_gear.values())
    assert last.joules >= first.joules  # the counter never runs backwards


@pytest.mark.skipif(nvml_works(), reason="this machine has NVML; the n/a path is for machines without")
def test_without_nvml_every_reading_says_na_and_why():
    with PowerMeter() as meter:
        reading = meter.reading()
        assert reading.watts is None
        assert str(reading).startswith("n/a — ")
        assert "NVML" in reading.note or "nvidia-ml-py" in reading.note
        with meter.window() as window:
            meter.record_token("low")
        assert window.joules is None and window.note.startswith("n/a — ")
        assert meter.trace() == []


@pytest.mark.skipif(not nvml_works(), reason="needs an NVIDIA GPU and driver")
def test_with_nvml_watts_and_joules_are_read():
    with PowerMeter(interval_s=0.05) as meter:
        with meter.window() as window:
            for gear in ("low", "high", "low"):
                meter.record_token(gear)
            time.sleep(1.2)
        reading = meter.reading()
    assert reading.watts is not None and reading.watts > 0
    assert reading.note in ("NVML instant power", "NVML power usage, averaged by the driver")
    assert window.joules is not None and window.joules > 0 and window.seconds >= 1.2
    assert window.tokens == {"low": 2, "high": 1}
    assert window.joules_per_token == window.joules / 3
    assert len(meter.trace()) >= 10
