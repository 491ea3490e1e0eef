"""`gearterm bench ui`: how fast the app answers keys while a reply streams at 500 tokens/s.

The stream comes from a stand-in, the scripted backend (gearterm/bench/scripted_backend.py):
a real model on this machine cannot hold an exact, steady 500 tokens/s. Everything else is
the real app: the worker thread, the queue, the 20 Hz drain, Markdown streaming, the panes,
and the history written to SQLite in a temporary folder.

The app runs under Textual's Pilot; keys are sent from a thread of their own, as a terminal
driver's input thread sends them (Pilot's press() would wait for the app to go idle, which it
never does under a stream), alternating a letter typed into the prompt and f3 (cycle the gear
mode), from when the screen has settled after loading the backend. The latency of a key is
the time from sending it to the first frame drawn after the app's state shows it. The app
runs headless, where Textual composes every frame but writes none; this benchmark also
renders each frame to the bytes a terminal would get, so that cost is counted. The same keys
with no stream are the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KEY_INTERVAL_S = 0.1  # one key every 100 ms
TERMINAL = (120, 40)
BASELINE_SECONDS = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the stream runs (default 20)")
    parser.add_argument("--rate", type=float, default=500.0, help="tokens per second of the scripted stream")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    tokens: int = 0
    missed: int = 0  # keys whose effect never reached a frame within a second

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(rate: float, seconds: float, stream: bool) -> Run:
    # The app first: importing it sets Textual's frame rate, which Textual reads once, when it is
    # first imported. Imported the other way round, this timed the app at Textual's default 60.
    from gearterm.app.app import GeartermApp  # isort: skip
    from textual import events

    from gearterm.bench.scripted_backend import ScriptedBackend
    from gearterm.config import BackendEntry, Config, GenerationConfig
    from gearterm.history import open_history

    config = Config(generation=GenerationConfig(max_tokens=max(1, int(rate * seconds))))
    run = Run()
    with tempfile.TemporaryDirectory() as data:
        history, _ = open_history(Path(data))
        app = GeartermApp(
            config,
            BackendEntry("scripted", "scripted"),
            history,
            create_backend=lambda entry, config: ScriptedBackend(rate),
        )
        in_flight: list = []  # [posted at, predicate] of the key not yet on screen
        shown = threading.Event()

        def display(screen, renderable, original=app._display):
            original(screen, renderable)
            if renderable is None:
                return
            renderable.render_segments(app.console)  # the bytes a terminal would be sent
            run.frames += 1
            if in_flight and in_flight[1]():
                run.latencies_ms.append((time.perf_counter() - in_flight[0]) * 1e3)
                in_flight.clear()
                shown.set()

        app._display = display

        def keyboard(prompt, stop: threading.Event) -> None:
            """Sends keys from its own thread, as a terminal driver's input thread does."""
            typed, mode, presses = "", app.gear_mode, 0
            while not stop.is_set():
                presses += 1
                if presses % 2:
                    letter = "abcdefghijklmnopqrstuvwxyz"[presses % 26]
                    typed += letter
                    predicate, key, char = (lambda e=typed: prompt.text == e), letter, letter
                else:
                    mode = mode.next()
                    predicate, key, char = (lambda m=mode: app.gear_mode is m), "f3", None
                shown.clear()
                in_flight[:] = [time.perf_counter(), predicate]
                app._driver.send_message(events.Key(key, char))
                if not shown.wait(1.0):
                    run.missed += 1
                    in_flight.clear()
                stop.wait(KEY_INTERVAL_S)

        async with app.run_test(size=TERMINAL) as pilot:
            while app.backend is None:
                await pilot.pause(0.05)
            # Keys start once the screen has settled from loading: the first key of the idle
            # baseline used to land in the layouts that hide the progress bar and fill the panes.
            await pilot.pause()
            prompt = app.chat_screen.prompt
            frames_before, start = run.frames, time.perf_counter()
            if stream:
                app.start_reply("go")
            stop = threading.Event()
            thread = threading.Thread(target=keyboard, args=(prompt, stop), name="keyboard")
            thread.start()
            while time.perf_counter() - start < seconds and (not stream or app.reply is not None):
                await asyncio.sleep(0.05)
            stop.set()
            while thread.is_alive():
                await asyncio.sleep(0.01)
            run.seconds = time.perf_counter() - start
            run.frames -= frames_before
            if stream:
                run.tokens = app.readings.reply_tokens
                if app.reply is not None:
                    app.reply.backend.cancel()
                    while app.reply is not None:
                        await pilot.pause(0.05)
    return run


def main(args: argparse.Namespace) -> int:
    streamed = asyncio.run(_measure(args.rate, args.seconds, stream=True))
    baseline = asyncio.run(_measure(args.rate, min(args.seconds, BASELINE_SECONDS), stream=False))
    tokens_per_s = streamed.tokens / streamed.seconds if streamed.seconds else 0.0
    from textual.constants import MAX_FPS  # the frame cap the app ran under

    if args.json:
        print(
            json.dumps(
                {
                    "tokens_per_s": round(tokens_per_s, 1),
                    "keypress_latency_ms": {"p50": _round(streamed.percentile(0.5)), "p99": _round(streamed.percentile(0.99))},
                    "frames": streamed.frames,
                    "keypresses": len(streamed.latencies_ms),
                    "missed_keypresses": streamed.missed,
                    "seconds": round(streamed.seconds, 2),
                    "max_fps": MAX_FPS,
                    "baseline_keypress_latency_ms": {
                        "p50": _round(baseline.percentile(0.5)),
                        "p99": _round(baseline.percentile(0.99)),
                    },
                }
            )
        )
        return 0
    width, height = TERMINAL
    print(f"bench ui: scripted stream at {args.rate:g} tokens/s, {width}x{height} headless terminal, one key every "
          f"{KEY_INTERVAL_S * 1e3:.0f} ms (letter into the prompt / f3), frames capped at {MAX_FPS}/s")
    print(f"{'run':<22}{'seconds':>8}{'tokens/s':>10}{'frames':>8}{'frames/s':>9}{'keys':>6}{'missed':>7}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for name, run in (("streaming (this test)", streamed), ("idle (baseline)", baseline)):
        rate = run.tokens / run.seconds if run.seconds else 0.0
        print(
            f"{name:<22}{run.seconds:>8.1f}{rate:>10.1f}{run.frames:>8}{run.frames / run.seconds:>9.1f}"
            f"{len(run.latencies_ms):>6}{run.missed:>7}{_fmt(run.percentile(0.5)):>8}{_fmt(run.percentile(0.99)):>8}"
            f"{_fmt(max(run.latencies_ms, default=None)):>8}"
        )
    print("latency: key posted → first frame drawn (and rendered to terminal bytes) that shows its effect")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
