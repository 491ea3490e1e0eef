"""The draft gear chosen by cost (backends.draft_choice): each gear is tried, the cheaper per
kept token drafts, the other is tried again now and then, and one slow cycle changes nothing."""

import pytest

from gearterm.backends.draft_choice import FIRST_TRIAL, REVISIT, DraftChoice, parse_draft_gear
from gearterm.kernels.gear import Gear

COST = {Gear.LOW: 3.0, Gear.MID: 2.0}  # seconds per kept token: here mid is cheaper


def drive(choice: DraftChoice, cycles: int, cost=COST) -> list[Gear]:
    chosen = []
    for _ in range(cycles):
        gear = choice.gear()
        choice.update(gear, seconds=cost[gear] * 4, kept=4)
        chosen.append(gear)
    return chosen


def test_each_gear_is_tried_then_the_cheaper_drafts():
    chosen = drive(DraftChoice([Gear.LOW, Gear.MID]), 2 * FIRST_TRIAL + 10)
    assert chosen[: 2 * FIRST_TRIAL] == [Gear.LOW] * FIRST_TRIAL + [Gear.MID] * FIRST_TRIAL
    assert chosen[2 * FIRST_TRIAL :] == [Gear.MID] * 10


def test_the_gear_not_chosen_drafts_again_after_a_while_and_wins_back_when_it_became_cheaper():
    choice = DraftChoice([Gear.LOW, Gear.MID])
    drive(choice, 2 * FIRST_TRIAL)
    chosen = drive(choice, 2 * REVISIT)
    # Low last drafted before mid's trial; it drafts one cycle each time REVISIT cycles have passed.
    first = REVISIT - FIRST_TRIAL
    assert [i for i, g in enumerate(chosen) if g is Gear.LOW] == [first, first + REVISIT + 1]
    # The text changed: low's drafts now cost less. A few revisits move the median over.
    chosen = drive(choice, 6 * (REVISIT + 1), cost={Gear.LOW: 1.0, Gear.MID: 2.0})
    assert chosen[-2 * REVISIT :].count(Gear.MID) <= 2  # now only mid's revisits


def test_one_slow_cycle_does_not_change_the_choice():
    choice = DraftChoice([Gear.LOW, Gear.MID])
    drive(choice, 2 * FIRST_TRIAL)
    choice.update(Gear.MID, seconds=100.0, kept=1)  # a compile, or the machine busy for a moment
    assert choice.gear() is Gear.MID


def test_a_single_gear_always_drafts():
    assert set(drive(DraftChoice([Gear.LOW]), 40)) == {Gear.LOW}
    with pytest.raises(ValueError, match="at least one gear"):
        DraftChoice([])


def test_where_drafting_costs_more_than_it_saves_the_high_gear_goes_alone():
    """Gear.HIGH, no drafts: a forced-high step. Where each draft gear's kept tokens cost more
    (a CPU whose float32 product keeps up with the gear kernel), lossless mode stops drafting."""
    cost = {Gear.LOW: 45.0, Gear.MID: 41.0, Gear.HIGH: 30.0}  # ms per kept token (SmolLM2, AVX-512 Xeon)
    chosen = drive(DraftChoice([Gear.LOW, Gear.MID, Gear.HIGH]), 3 * FIRST_TRIAL + 60, cost)
    assert chosen[3 * FIRST_TRIAL :].count(Gear.HIGH) > 50


def test_the_setting_names_a_gear_or_auto():
    assert parse_draft_gear("mid") is Gear.MID and parse_draft_gear("auto") is None
