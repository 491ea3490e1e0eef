"""GPU power on Apple Silicon from the IOReport energy counters (no root), or why there is none."""

from __future__ import annotations

import platform
import threading
import time

WINDOW = "gearterm"


class ApplePower:
    """Mean GPU watts between readings, from zeus-apple-silicon's IOReport energy windows.

    IOReport gives energy, not power: each reading closes the window the previous one
    opened and divides its GPU millijoules by the window's length."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitor = None
        self.reason = ""
        system, machine = platform.system(), platform.machine()
        if (system, machine) != ("Darwin", "arm64"):
            self.reason = f"not Apple Silicon ({system} {machine}); GPU power comes from IOReport on macOS"
            return
        try:
            from zeus_apple_silicon import AppleEnergyMonitor
        except ImportError:
            self.reason = "no IOReport reader installed: pip install zeus-apple-silicon"
            return
        try:
            self._monitor = AppleEnergyMonitor()
            self._monitor.begin_window(WINDOW)
        except Exception as e:  # the reader's own errors, whatever their type: show, never crash
            self._monitor, self.reason = None, f"IOReport reader failed: {e}"
        self._since = time.perf_counter()

    def reading(self) -> tuple[float | None, str]:
        """(watts, where they come from), or (None, why not)."""
        if self._monitor is None:
            return None, self.reason
        with self._lock:
            metrics = self._monitor.end_window(WINDOW)
            now = time.perf_counter()
            self._monitor.begin_window(WINDOW)
            seconds, self._since = now - self._since, now
        if metrics.gpu_mj is None:
            return None, "IOReport has no GPU energy channel on this Mac"
        return metrics.gpu_mj / 1e3 / seconds, f"GPU, IOReport, mean over the last {seconds:.1f} s"
