"""The gate pane: how often each decoder layer's hidden state passed the activation entropy gate."""

from __future__ import annotations

from rich.text import Text

from gearterm.app.readings import Readings
from gearterm.app.widgets.pane_text import PaneText

BAR = 10  # cells per layer bar


class GatePane(PaneText):
    def on_mount(self) -> None:
        self.border_title = "Gate · survival per layer"

    def show_readings(self, readings: Readings, backend_name: str | None) -> None:
        self.show(_render(readings, backend_name))


def _render(readings: Readings, backend_name: str | None) -> Text | str:
    gate, caps = readings.reply_gate, readings.capabilities
    if caps is None:
        return "n/a — no model loaded"
    if not caps.hidden_states:
        return f"n/a — the {backend_name} backend cannot see hidden states (a server sends tokens only)"
    if not gate.tokens:
        if readings.reply_tokens:
            return f"n/a — the {backend_name} backend sent no gate readings with its tokens"
        return "waiting for the first token"
    text = Text(no_wrap=True)
    for layer, share in enumerate(gate.per_layer):
        filled = round(share * BAR)
        text.append(f"L{layer:<2} ")
        text.append("█" * filled, style="#5fafff")
        text.append("░" * (BAR - filled), style="dim")
        text.append(f" {100 * share:3.0f}%\n")
    text.append(f"overall {100 * gate.overall:.0f}% of {gate.tokens} tokens (this reply)\n")
    if readings.session_gate.overall is not None:
        text.append(f"session {100 * readings.session_gate.overall:.0f}% of {readings.session_gate.tokens} tokens\n")
    text.append("pass: hist. entropy ≤0.80, zlib ≤0.90", style="dim")
    return text
