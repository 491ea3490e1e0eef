"""The gate pane: how often each decoder layer's hidden state passed the activation entropy gate.

One column per layer on a fixed 0–100% scale, so a 32-layer model fits as well as a 5-layer one.
The gate only watches: it never changes what the model computes or says. Trained models'
hidden states are rarely peaked or compressible enough to pass, so 0% everywhere is common;
the pane says what that means instead of leaving an empty chart."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from gearterm.app.readings import Readings
from gearterm.app.widgets.bounded_sparkline import BoundedSparkline
from gearterm.app.widgets.pane_text import PaneText


class GatePane(Vertical):
    def compose(self) -> ComposeResult:
        yield BoundedSparkline(fit=True, id="gate-layers")
        yield PaneText(id="gate-figures")
        # Drawn once: the figures above are wrapped again at every redraw.
        yield Static("[dim]watch only: never changes the output[/]", id="gate-legend")

    def on_mount(self) -> None:
        self.border_title = "Gate · survival per layer"

    def show_readings(self, readings: Readings, backend_name: str | None) -> None:
        chart = self.query_one(BoundedSparkline)
        figures = self.query_one("#gate-figures", PaneText)
        gate, caps = readings.reply_gate, readings.capabilities
        reason = None
        backend_name = escape(backend_name or "")
        if caps is None:
            reason = "n/a — no model loaded"
        elif not caps.hidden_states:
            reason = f"n/a — the {backend_name} backend cannot see hidden states (a server sends tokens only)"
        elif not gate.tokens and readings.replayed:
            reason = "n/a — a reopened chat: gate readings are not stored; the next reply shows them"
        elif not gate.tokens:
            reason = (
                f"n/a — the {backend_name} backend sent no gate readings with its tokens"
                if readings.reply_tokens
                else "waiting for the first token of a reply"
            )
        if reason is not None:
            chart.display = False
            figures.show(reason)
            return
        shares = gate.per_layer
        chart.display = True
        chart.show(shares, (0.0, 1.0))
        best = max(range(len(shares)), key=shares.__getitem__)
        worst = min(range(len(shares)), key=shares.__getitem__)
        lines = [
            f"[dim]layers 0–{len(shares) - 1} left to right, scale 0–100%[/]",
            f"survival {100 * gate.overall:.0f}% of {gate.tokens} tokens this reply"
            + (f", {100 * readings.session_gate.overall:.0f}% session" if readings.session_gate.overall is not None else ""),
        ]
        if gate.overall:
            lines += [
                f"most L{best} {100 * shares[best]:.0f}% · least L{worst} {100 * shares[worst]:.0f}%",
                "[dim]pass: hist. entropy ≤0.80, zlib ≤0.90[/]",
            ]
        else:  # the same number of lines: the pane's height does not change with it
            lines += ["no layer passed: no hidden state was", "peaked (≤0.80) and compressible (≤0.90)"]
        figures.show("\n".join(lines))
