"""The gear policy: scaled thresholds, hysteresis, dwell, calibration, forced modes, anomaly guard."""

import math

import pytest

from gearterm.backends.gearbox import Gearbox, GearMode, PolicyConfig
from gearterm.kernels.gear import Gear

RAW = PolicyConfig(window=1, min_dwell=0, hysteresis_bits=0.0)  # no smoothing: test one rule at a time


def test_thresholds_scale_with_vocabulary():
    at_32k = Gearbox(32768)
    assert at_32k.low == pytest.approx(1.8) and at_32k.high == pytest.approx(3.5)
    at_512 = Gearbox(512)  # log2 512 = 9 bits: 9/15 of the 32k figures
    assert at_512.low == pytest.approx(1.8 * 0.6) and at_512.high == pytest.approx(3.5 * 0.6)


def test_entropy_picks_the_gear():
    box = Gearbox(32768, config=RAW)
    assert box.gear == Gear.HIGH  # a reply starts in the high gear
    assert box.step(0.5).gear == Gear.LOW
    assert box.step(2.5).gear == Gear.MID
    assert box.step(4.0).gear == Gear.HIGH
    assert box.shifts == 3


def test_hysteresis_holds_the_gear_near_a_threshold():
    box = Gearbox(32768, config=PolicyConfig(window=1, min_dwell=0, hysteresis_bits=0.2))
    box.step(0.5)
    assert box.gear == Gear.LOW
    assert box.step(1.9).gear == Gear.LOW  # above 1.8 but inside the band: stays low
    assert box.step(2.1).gear == Gear.MID  # past the band: shifts up
    assert box.step(1.7).gear == Gear.MID  # below 1.8 but inside the band: stays mid
    assert box.step(1.5).gear == Gear.LOW


def test_minimum_dwell_delays_the_next_shift():
    box = Gearbox(32768, config=PolicyConfig(window=1, min_dwell=3, hysteresis_bits=0.0))
    assert box.step(0.5).gear == Gear.LOW  # the first shift may come at once
    assert box.step(4.0).gear == Gear.LOW
    assert box.step(4.0).gear == Gear.LOW
    assert box.step(4.0).gear == Gear.HIGH  # three tokens after the last shift


def test_rolling_window_smooths_a_single_spike():
    box = Gearbox(32768, config=PolicyConfig(window=4, min_dwell=0, hysteresis_bits=0.0))
    for _ in range(4):
        box.step(0.2)
    assert box.step(5.0).gear == Gear.LOW  # mean of (0.2, 0.2, 0.2, 5.0) = 1.4 bits
    assert box.step(5.0).gear == Gear.MID  # mean 2.6 bits


def test_calibration_moves_thresholds_toward_the_prompt_within_bounds():
    box = Gearbox(32768)
    box.calibrate([0.1] * 4)
    assert (box.low, box.high) == (box.default_low, box.default_high)  # too few tokens
    box.calibrate([0.5, 1.0, 1.5, 2.0] * 16)  # p25 ~ 0.875, p75 ~ 1.625, weight 0.5
    assert box.default_low * 0.5 <= box.low < box.default_low
    assert box.low == pytest.approx(0.5 * 1.8 + 0.5 * 0.875, rel=0.02)
    assert box.high == pytest.approx(max(0.5 * 3.5 + 0.5 * 1.625, box.low + 2 * box.hysteresis), rel=0.02)
    box.calibrate([40.0] * 10_000)  # a wild prompt cannot push past 2x the defaults
    assert box.low == pytest.approx(2 * box.default_low) and box.high == pytest.approx(2 * box.default_high)
    box.reset()
    assert (box.low, box.high) == (box.default_low, box.default_high)


@pytest.mark.parametrize("mode,gear", [(GearMode.LOW, Gear.LOW), (GearMode.MID, Gear.MID), (GearMode.HIGH, Gear.HIGH)])
def test_forced_modes_ignore_entropy(mode, gear):
    box = Gearbox(32768, mode, RAW)
    assert box.gear == gear
    assert {box.step(e).gear for e in (0.1, 2.5, 6.0)} == {gear}
    assert box.shifts == 0


def test_anomaly_guard_forces_high_on_nan_at_once():
    box = Gearbox(32768, GearMode.LOW, RAW)
    decision = box.step(math.nan)
    assert decision.gear == Gear.HIGH and "NaN" in decision.anomaly
    assert box.step(0.1).gear == Gear.LOW and box.step(0.1).anomaly is None


def test_anomaly_guard_needs_two_near_uniform_steps():
    box = Gearbox(512, GearMode.LOW, RAW)  # 90% of 9 bits = 8.1 bits
    assert box.step(8.5).anomaly is None
    second = box.step(8.6)
    assert second.gear == Gear.HIGH and "90%" in second.anomaly
    assert box.step(8.2).anomaly is not None  # still suspect: stays forced
    assert box.step(1.0).anomaly is None


def test_mode_cycle_covers_every_mode():
    mode, seen = GearMode.AUTO, []
    for _ in range(5):
        seen.append(mode)
        mode = mode.next()
    assert mode == GearMode.AUTO and set(seen) == set(GearMode)
    assert GearMode.LOSSLESS.forced_gear is Gear.HIGH  # the policy holds the high gear; drafts are verified
