"""The speed pane: decode rate, time per step and time to first token of the current reply."""

from __future__ import annotations

from textual.widgets import Static

from gearterm.app.readings import Readings


class SpeedPane(Static):
    def on_mount(self) -> None:
        self.border_title = "Speed"

    def show(self, readings: Readings) -> None:
        if readings.submitted_at is None:
            lines = ["n/a — no reply yet"]
        else:
            rate, step, ttft = readings.tokens_per_s, readings.ms_per_token, readings.ttft_s
            lines = [
                f"{_fmt(rate, '.1f')} tokens/s [dim](wall clock, decode)[/]",
                f"{_fmt(step, '.1f')} ms/token [dim](backend step, mean)[/]",
                f"{_fmt(ttft, '.2f')} s first token [dim](from submit)[/]",
            ]
        if done := readings.last_done:
            lines.append(f"[dim]last: {done.tokens} tokens, {done.seconds:.2f} s, {done.reason}[/]")
        self.update("\n".join(lines))


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
