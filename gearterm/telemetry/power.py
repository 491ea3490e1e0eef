"""GPU power and energy from NVML, sampled in a thread of its own: watts now and their
history, and joules per token split across gears by the tokens each gear produced.

Watts come from NVML's instant power field where the driver has it (else the driver's
averaged power reading; `note` says which); joules from the total-energy counter. That
counter updates about every 100 ms on an H100, so joules are attributed over windows of
at least one second, never per token."""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

Gear = Hashable  # whatever the caller records tokens under (the app uses gearterm.kernels.gear.Gear)


@dataclass(frozen=True)
class CounterSample:
    seconds: float  # monotonic clock
    joules: float  # NVML's total-energy counter
    tokens: Mapping[Gear, int]  # tokens each gear had produced by then


@dataclass
class EnergyAttribution:
    """Joules and tokens per gear, summed over whole windows; windows with no tokens are idle."""

    joules: dict[Gear, float] = field(default_factory=dict)
    tokens: dict[Gear, int] = field(default_factory=dict)
    windows: int = 0
    seconds: float = 0.0
    idle_joules: float = 0.0

    def add(self, other: EnergyAttribution) -> None:
        for gear, j in other.joules.items():
            self.joules[gear] = self.joules.get(gear, 0.0) + j
        for gear, n in other.tokens.items():
            self.tokens[gear] = self.tokens.get(gear, 0) + n
        self.windows += other.windows
        self.seconds += other.seconds
        self.idle_joules += other.idle_joules

    @property
    def joules_per_token_by_gear(self) -> dict[Gear, float]:
        return {g: self.joules[g] / n for g, n in self.tokens.items() if n > 0}

    @property
    def joules_per_token(self) -> float | None:
        total = sum(self.tokens.values())
        return sum(self.joules.values()) / total if total else None


def attribute_window(start: CounterSample, end: CounterSample) -> EnergyAttribution:
    """The window's joules shared among gears in proportion to the tokens each produced in it."""
    joules = end.joules - start.joules
    produced = {g: end.tokens.get(g, 0) - start.tokens.get(g, 0) for g in end.tokens}
    produced = {g: n for g, n in produced.items() if n > 0}
    total = sum(produced.values())
    result = EnergyAttribution(windows=1, seconds=end.seconds - start.seconds)
    if total == 0:
        result.idle_joules = joules
    else:
        result.joules = {g: joules * n / total for g, n in produced.items()}
        result.tokens = produced
    return result


def attribute(samples: Sequence[CounterSample], min_window_s: float = 1.0) -> EnergyAttribution:
    """Cut a trace into consecutive windows of at least `min_window_s` and attribute each;
    a tail shorter than that is left out (its joules are not yet trustworthy)."""
    totals = EnergyAttribution()
    if not samples:
        return totals
    start = samples[0]
    for sample in samples[1:]:
        if sample.seconds - start.seconds >= min_window_s:
            totals.add(attribute_window(start, sample))
            start = sample
    return totals


@dataclass(frozen=True)
class PowerReading:
    """What the power pane shows. `watts` None means no meter, and `note` says why."""

    watts: float | None
    note: str  # where the watts come from, or why there are none
    history: tuple[float, ...] = ()
    power_limit_watts: float | None = None
    joules_per_token_by_gear: Mapping[Gear, float] = field(default_factory=dict)
    joules_per_token: float | None = None  # since the meter started
    joules_per_token_reply: float | None = None  # since the last mark_reply()
    energy_note: str | None = None  # why there are no joules although there are watts

    def __str__(self) -> str:
        return f"n/a — {self.note}" if self.watts is None else f"{self.watts:.0f} W ({self.note})"


@dataclass
class EnergyWindow:
    """Filled in when a `PowerMeter.window()` block ends."""

    joules: float | None = None
    seconds: float = 0.0
    tokens: dict[Gear, int] = field(default_factory=dict)  # record_token() calls inside the block
    note: str = ""

    @property
    def joules_per_token(self) -> float | None:
        total = sum(self.tokens.values())
        return self.joules / total if self.joules is not None and total else None


def _nvml_reason(error: Exception) -> str:
    import pynvml

    reasons = {
        pynvml.NVMLError_LibraryNotFound: "NVML library not found (no NVIDIA driver on this machine)",
        pynvml.NVMLError_DriverNotLoaded: "the NVIDIA driver is not loaded",
        pynvml.NVMLError_NoPermission: "no permission to read NVML",
        pynvml.NVMLError_NotSupported: "this GPU does not report it through NVML",
    }
    for kind, reason in reasons.items():
        if isinstance(error, kind):
            return reason
    return f"NVML error: {error}"


class PowerMeter:
    """One GPU's watts and energy, sampled every `interval_s` in a daemon thread.

    Use as a context manager, or start() and stop(). Without NVML or a GPU every reading is
    "n/a — <reason>"; nothing raises."""

    def __init__(
        self,
        device_index: int = 0,
        interval_s: float = 0.1,
        history: int = 120,
        min_window_s: float = 1.0,
        trace_len: int = 6000,
    ):
        self.device_index, self.interval_s, self.min_window_s = device_index, interval_s, min_window_s
        self.unavailable: str | None = None  # the reason, once start() found no meter
        self.energy_unavailable: str | None = None
        self.power_source = ""
        self.power_limit_watts: float | None = None
        self._watts: deque[float] = deque(maxlen=history)
        self._trace: deque[CounterSample] = deque(maxlen=trace_len)  # 10 minutes at 10 Hz
        self._tokens: dict[Gear, int] = {}
        self._session = EnergyAttribution()
        self._reply = EnergyAttribution()
        self._window_start: CounterSample | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None

    def start(self) -> PowerMeter:
        try:
            import pynvml
        except ImportError:
            # make run installs the CUDA extra (which brings NVML) only where nvidia-smi is.
            no_gpu = shutil.which("nvidia-smi") is None
            self.unavailable = "no NVIDIA GPU found" if no_gpu else "nvidia-ml-py is not installed: gearterm[cuda]"
            return self
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            self.unavailable = _nvml_reason(e)
            return self
        try:
            count = pynvml.nvmlDeviceGetCount()
            if self.device_index >= count:
                self.unavailable = f"no GPU {self.device_index}: NVML sees {count}"
                return self
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
            self._pick_power_source(pynvml)
            try:
                self.power_limit_watts = pynvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1e3
            except pynvml.NVMLError:
                self.power_limit_watts = None
            try:
                self._read_joules()
            except pynvml.NVMLError as e:
                self.energy_unavailable = f"no total-energy counter: {_nvml_reason(e)}"
        except pynvml.NVMLError as e:
            self.unavailable = _nvml_reason(e)
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="power-meter", daemon=True)
        self._thread.start()
        return self

    def _pick_power_source(self, pynvml) -> None:
        try:
            self._read_instant_watts(pynvml)
            self._read_watts = lambda: self._read_instant_watts(pynvml)
            self.power_source = "NVML instant power"
        except pynvml.NVMLError:
            pynvml.nvmlDeviceGetPowerUsage(self._handle)  # raises if there is no power reading at all
            self._read_watts = lambda: pynvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3
            self.power_source = "NVML power usage, averaged by the driver"

    def _read_instant_watts(self, pynvml) -> float:
        value = pynvml.nvmlDeviceGetFieldValues(self._handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
        if value.nvmlReturn != pynvml.NVML_SUCCESS:
            raise pynvml.NVMLError(value.nvmlReturn)
        return value.value.uiVal / 1e3  # milliwatts

    def _read_joules(self) -> float:
        import pynvml

        return pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3  # millijoules

    def _sample(self) -> None:
        watts = self._read_watts()
        now = time.monotonic()
        joules = None if self.energy_unavailable else self._read_joules()
        with self._lock:
            self._watts.append(watts)
            if joules is None:
                return
            sample = CounterSample(now, joules, dict(self._tokens))
            self._trace.append(sample)
            if self._window_start is None:
                self._window_start = sample
            elif now - self._window_start.seconds >= self.min_window_s:
                window = attribute_window(self._window_start, sample)
                self._session.add(window)
                self._reply.add(window)
                self._window_start = sample

    def _run(self) -> None:
        import pynvml

        while not self._stop.is_set():
            try:
                self._sample()
            except pynvml.NVMLError as e:
                self.unavailable = f"NVML stopped answering: {_nvml_reason(e)}"
                return
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._handle is not None:
            import pynvml

            pynvml.nvmlShutdown()
            self._handle = None

    def __enter__(self) -> PowerMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def record_token(self, gear: Gear) -> None:
        """Count one token produced at `gear`: joules are shared out by these counts."""
        with self._lock:
            self._tokens[gear] = self._tokens.get(gear, 0) + 1

    def mark_reply(self) -> None:
        """Start the 'this reply' figure afresh."""
        with self._lock:
            self._reply = EnergyAttribution()

    def trace(self) -> list[CounterSample]:
        """The latest counter samples, oldest first: what `attribute` takes."""
        with self._lock:
            return list(self._trace)

    def reading(self) -> PowerReading:
        if self.unavailable:
            return PowerReading(None, self.unavailable)
        with self._lock:
            history = tuple(self._watts)
            by_gear = self._session.joules_per_token_by_gear
            overall, reply = self._session.joules_per_token, self._reply.joules_per_token
        if not history:
            return PowerReading(None, "waiting for the first NVML sample")
        return PowerReading(
            watts=history[-1],
            note=self.power_source,
            history=history,
            power_limit_watts=self.power_limit_watts,
            joules_per_token_by_gear=by_gear,
            joules_per_token=overall,
            joules_per_token_reply=reply,
            energy_note=self.energy_unavailable,
        )

    @contextmanager
    def window(self) -> Iterator[EnergyWindow]:
        """Joules and seconds of the block, read from the energy counter at its two ends,
        and the tokens recorded inside it. The counter's ~0.1 s update period is the error
        at each end: keep blocks well over a second."""
        result = EnergyWindow()
        if self.unavailable or self.energy_unavailable or self._handle is None:
            result.note = f"n/a — {self.unavailable or self.energy_unavailable or 'the meter is not started'}"
            yield result
            return
        with self._lock:
            tokens_before = dict(self._tokens)
        joules_before, start = self._read_joules(), time.monotonic()
        yield result
        result.joules = self._read_joules() - joules_before
        result.seconds = time.monotonic() - start
        with self._lock:
            result.tokens = {g: n - tokens_before.get(g, 0) for g, n in self._tokens.items() if n > tokens_before.get(g, 0)}
        if result.seconds < self.min_window_s:
            result.note = f"only {result.seconds:.2f} s: the energy counter updates about every 0.1 s"
