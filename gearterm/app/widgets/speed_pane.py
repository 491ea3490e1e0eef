"""The speed pane: decode rate, time per step and time to first token of the current reply."""

from __future__ import annotations


from collections import Counter

from gearterm.app.readings import Readings
from gearterm.app.widgets.pane_text import PaneText
from gearterm.reply_line import ReplyFacts


class SpeedPane(PaneText):
    def on_mount(self) -> None:
        self.border_title = "Speed"

    def show_readings(self, readings: Readings) -> None:
        if readings.submitted_at is None and readings.replayed:
            lines = ["n/a — a reopened chat: its last stored reply below", f"{_fmt(readings.ms_per_token, '.1f')} ms/token [dim](backend step, mean)[/]"]
        elif readings.submitted_at is None:
            lines = ["n/a — no reply yet"]
        else:
            rate, step, ttft = readings.tokens_per_s, readings.ms_per_token, readings.ttft_s
            lines = [
                f"{_fmt(rate, '.1f')} tokens/s [dim](wall clock, decode)[/]",
                f"{_fmt(step, '.1f')} ms/token [dim](backend step, mean)[/]",
                f"{_fmt(ttft, '.2f')} s first token [dim](from submit)[/]",
            ]
        if done := readings.last_done:
            rate = ReplyFacts(done.tokens, done.seconds, done.first_token_s, None, Counter(), done.reason).tokens_per_s
            lines.append(f"[dim]last: {done.tokens} tokens, {done.seconds:.2f} s, {_fmt(rate, '.1f')} tok/s, {done.reason}[/]")
        self.show("\n".join(lines))


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
