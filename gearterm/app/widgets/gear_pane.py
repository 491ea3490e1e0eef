"""The gear pane: the gear of the latest token in large type, the gear mix, shifts and the mode."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits

from gearterm.backends.gearbox import GearMode
from gearterm.app.gear_colors import GEAR_COLORS
from gearterm.app.readings import Readings
from gearterm.app.widgets.pane_text import PaneText
from gearterm.kernels.gear import Gear

MIX_BAR = 10  # cells in each gear mix bar


class GearPane(Vertical):
    def __init__(self, cycle_key: str, **kwargs):
        """`cycle_key`: the key that cycles the gear mode, named in the pane."""
        super().__init__(**kwargs)
        self.cycle_key = cycle_key
        self._colored: Gear | None = None  # the gear the number is coloured for

    def compose(self) -> ComposeResult:
        with Horizontal(id="gear-now"):
            yield Digits("--", id="gear-bits")
            yield PaneText(id="gear-label")
        yield PaneText(id="gear-mix")

    def on_mount(self) -> None:
        self.border_title = "Gear · weight precision"

    def show(self, readings: Readings) -> None:
        gear = readings.gear
        digits = self.query_one("#gear-bits", Digits)
        # Always two digits wide (" 4", " 8", "16"): a change of width would lay out the whole
        # screen again, and the label beside the number would jump at every shift.
        bits = readings.bits_of(gear) if gear is not None else None
        value = f"{bits:>2}" if bits else "--"
        if digits.value != value:
            digits.update(value)
        # An inline colour repaints the number; a class change would restyle it from the stylesheet.
        if gear is not self._colored:
            digits.styles.color = GEAR_COLORS[gear] if gear is not None else None
            self._colored = gear
        label = f"-bit {gear.label} gear" if gear is not None else "no tokens yet"
        if gear is not None and bits is None:  # another model's high gear (a reopened chat's, or before a switch)
            label = f" {gear.label} gear, another model's"
        elif gear is Gear.HIGH and readings.high_gear_bits != gear.bits:  # float32 on a CPU: say why it is not 16
            label += " (as loaded)"
        mode, running = readings.gear_mode, readings.streaming_mode
        lossless = (running or mode) is GearMode.LOSSLESS
        if lossless:  # every token is the high gear's: what the drafts buy takes the next-gear line
            ratio, why = readings.lossless_speedup
            label += f"\n{ratio:.2f}x forced high's tok/s" if ratio is not None else f"\nvs high n/a: {why}"
        elif running is not None:  # the policy's choice for the next token of this reply
            label += f"\nnext: {readings.next_gear.label}" if readings.next_gear is not None else "\n"
        elif mode.forced_gear is not None:
            label += f"\nnext reply: {mode.forced_gear.label} (forced)"
        else:
            label += "\nnext reply: policy picks"
        # Each line fits the pane's width: a label that wraps to a fourth line makes the pane
        # taller, and that lays out the whole screen again at a key press.
        if running is not None and running is not mode:  # the reply in flight keeps its own
            label += f"\nmode {mode.value}, [b]next reply[/]; now {running.value}"
        else:
            forced = "" if mode in (GearMode.AUTO, GearMode.LOSSLESS) else ", forced"
            label += f"\nmode {mode.value}{forced} [dim]({self.cycle_key} cycles)[/]"
        self.query_one("#gear-label", PaneText).show(label)

        mix = Text(no_wrap=True, overflow="ellipsis")
        _append_mix(mix, "reply", readings.reply_gears)
        _append_mix(mix, "session", readings.session_gears)
        if lossless:  # draft and high tokens alternate: shifts would count the verify passes
            mix.append(_verified(readings))
        else:
            mix.append(f"shifts {readings.reply_shifts} this reply, {readings.session_shifts} session")
        self.query_one("#gear-mix", PaneText).show(mix)
        self.border_subtitle = _geared_share(readings)


def _verified(readings: Readings) -> str:
    """Lossless mode: the share of drafted tokens the high gear kept and the tokens each
    verify pass kept, this session."""
    counts = readings.session_verify
    if counts.acceptance is None:
        return "drafts kept n/a: no verify pass yet"
    return f"drafts kept {100 * counts.acceptance:.0f}%, {counts.tokens_per_pass:.1f} tok/verify pass"


def _geared_share(readings: Readings) -> str:
    """How much of the model the gears move: the share of its decoder layers' projection
    weights held in gears (1.0 wherever gearterm runs the model itself)."""
    capabilities = readings.capabilities
    if capabilities is None:
        return ""
    if capabilities.gears == "per_turn":
        return "server: a model variant per turn"
    if capabilities.geared_share is None:
        return "geared share n/a"
    return f"geared {100 * capabilities.geared_share:.0f}% of layer weights"


def _append_mix(text: Text, name: str, counts: Counter) -> None:
    """A bar split by gear, then the share of tokens each gear produced."""
    total = sum(counts.values())
    text.append(f"{name:<7} ")
    if not total:
        text.append("·" * MIX_BAR, style="dim")
        text.append(" no tokens\n", style="dim")
        return
    cells = {g: round(MIX_BAR * counts[g] / total) for g in Gear}
    cells[max(Gear, key=lambda g: counts[g])] += MIX_BAR - sum(cells.values())  # rounding lands on the largest
    for g in Gear:
        text.append("█" * cells[g], style=GEAR_COLORS[g])
    for g in Gear:  # each share in its gear's colour: the bar's legend
        text.append(f" {g.label[0].upper()}{100 * counts[g] / total:.0f}", style=GEAR_COLORS[g])
    text.append(f"% n={total}\n")
