"""The readings behind the panes: the entropy thresholds shown follow the reply's own policy."""

from gearterm.backends.base import Capabilities, TokenEvent
from gearterm.backends.gearbox import Gearbox
from gearterm.app.readings import Readings
from gearterm.kernels.gear import Gear

CAPS = Capabilities(entropy="exact", gears="per_token", hidden_states=False, vocab_size=512)


def _event(thresholds):
    return TokenEvent("a", 1, Gear.MID, Gear.MID, 2.0, 5.0, thresholds_bits=thresholds)


def test_thresholds_follow_the_reply_and_reset_with_the_backend():
    readings = Readings(CAPS)
    box = Gearbox(512)
    assert (readings.low_bits, readings.high_bits) == (box.default_low, box.default_high)
    assert not readings.thresholds_calibrated
    readings.add(0.0, _event(None))  # a backend that does not say keeps what is shown
    assert not readings.thresholds_calibrated
    readings.add(0.1, _event((1.0, 4.0)))
    assert (readings.low_bits, readings.high_bits) == (1.0, 4.0) and readings.thresholds_calibrated
    readings.set_capabilities(CAPS)  # another backend: its defaults again
    assert (readings.low_bits, readings.high_bits) == (box.default_low, box.default_high)
    assert not readings.thresholds_calibrated
