"""The three gears: which weight planes a forward pass reads."""

import enum


class Gear(enum.IntEnum):
    """Ordered by precision, so `max(a, b)` is the safer of two gears."""

    LOW = 0  # plane H: int4, 0.5 byte per weight
    MID = 1  # planes H + L: two int4 planes, 1 byte per weight
    HIGH = 2  # the original 16-bit (or 32-bit) weight, bit-exact

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def bits(self) -> int:
        return (4, 8, 16)[self]

    @classmethod
    def parse(cls, name: str) -> "Gear":
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown gear {name!r}: use low, mid or high") from None


class GearSelector:
    """One per model, shared by all its geared layers: a shift is one assignment here."""

    def __init__(self, gear: Gear = Gear.HIGH):
        self.gear = gear
