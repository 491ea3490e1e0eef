"""The panes explain what they show on a real model (issue 18, fix 9): the entropy chart's scale
fits the entropies a chat has, a gate that passes nothing says so and why, and the high gear
names the precision it really reads."""

from app_helpers import loaded, make_app, say, wait_for

from gearterm.backends.base import TokenEvent
from gearterm.bench.scripted_backend import ScriptedBackend
from gearterm.config import BackendEntry

SIZE = (120, 40)


class Scripted(ScriptedBackend):
    """The scripted stand-in (V = 512, log2 V = 9 bits) with its entropies and gate readings replaced."""

    def __init__(self, entropy: float | None = None, gate_passes: bool | None = None):
        super().__init__(2000.0)
        self.entropy, self.gate_passes = entropy, gate_passes

    def generate(self, messages, params):
        for event in super().generate(messages, params):
            if isinstance(event, TokenEvent):
                if self.entropy is not None:
                    event.entropy_bits = self.entropy
                if self.gate_passes is not None:
                    event.gate_survival = (self.gate_passes,) * 5
            yield event


def _text(app, selector: str) -> str:
    return str(app.chat_screen.query_one(selector).render())


async def test_the_entropy_scale_fits_the_chat_and_grows_a_step_at_a_time(tmp_path):
    backend = Scripted(entropy=1.0)
    app = make_app(tmp_path, create_backend=lambda entry, config: backend)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "calm")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        chart = app.chat_screen.query_one("#entropy-sparkline")
        # Twice the high threshold (2.1 bits at V = 512), rounded up to 2-bit steps; log2 V is 9.
        assert chart.bounds == (0.0, 6.0) and "0–6, fits this chat (log2 V 9.0)" in _text(app, "#entropy-figures")
        backend.entropy = 6.9
        await say(pilot, app, "wild")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert chart.bounds == (0.0, 8.0)  # the next step that holds 6.9
        backend.entropy = 8.5
        await say(pilot, app, "wilder")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert chart.bounds[1] == 9.0 and "= log2 V, the most possible" in _text(app, "#entropy-figures")
        assert "colour = gear asked: █ low █ mid █ high" in _text(app, "#entropy-legend")  # the colours' legend


async def test_a_gate_that_passes_nothing_says_what_that_means(tmp_path):
    app = make_app(tmp_path, create_backend=lambda entry, config: Scripted(gate_passes=False))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        text = _text(app, "#gate-figures")
        assert "survival 0% of 24 tokens" in text and "no layer passed" in text
        assert "watch only: never changes the output" in _text(app, "#gate-legend")


async def test_the_high_gear_of_float32_weights_on_a_cpu_says_32_bits(tmp_path):
    pocket = BackendEntry(label="pocket", backend="hf")  # the packaged model, float32 on this CPU
    app = make_app(tmp_path, entry=pocket, max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert "high gear float32" in str(app.chat_screen.status.render())
        await pilot.press("f3", "f3", "f3")  # forced high
        await say(pilot, app, "Hello")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert app.chat_screen.query_one("#gear-bits").value == "32"
        assert "-bit high gear (as loaded)" in _text(app, "#gear-label")
        # gearterm runs the pocket model itself: every projection of every layer is geared
        assert app.chat_screen.query_one("#gear").border_subtitle == "geared 100% of layer weights"


async def test_a_backend_that_does_not_say_how_much_is_geared_shows_n_a(tmp_path):
    app = make_app(tmp_path, create_backend=lambda entry, config: Scripted())
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await say(pilot, app, "hi")
        await wait_for(pilot, lambda: not app.panes_stale, "the panes")
        assert app.chat_screen.query_one("#gear").border_subtitle == "geared share n/a"
