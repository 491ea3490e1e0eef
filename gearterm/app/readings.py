"""What the side panes show, accumulated from the token events of this reply and this session.

Plain Python on the UI thread: the drain tick feeds it events, the panes render from it.
Times are stamped by the generation worker the moment the backend yields an event, so a
20 Hz drain does not blur tokens/s or time to first token. A reopened chat is replayed from
its stored per-token trace.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from gearterm.backends.base import Capabilities, ReplyDone, TokenEvent
from gearterm.backends.gearbox import Gearbox, GearMode, PolicyConfig
from gearterm.history import TokenRow
from gearterm.kernels.gear import Gear

ENTROPY_HISTORY = 512  # tokens kept for the sparkline (wider than any pane)
MEAN_WINDOW = 32  # tokens in the rolling mean shown under the sparkline


@dataclass
class GateCounts:
    """Tokens that passed the activation entropy gate, per decoder layer."""

    passed: list[int] = field(default_factory=list)
    tokens: int = 0

    def add(self, survival: tuple[bool, ...]) -> None:
        if len(self.passed) != len(survival):
            self.passed = [0] * len(survival)
        self.passed = [p + bool(s) for p, s in zip(self.passed, survival)]
        self.tokens += 1

    @property
    def per_layer(self) -> list[float]:
        return [p / self.tokens for p in self.passed] if self.tokens else []

    @property
    def overall(self) -> float | None:
        return sum(self.passed) / (self.tokens * len(self.passed)) if self.tokens and self.passed else None


@dataclass
class VerifyCounts:
    """Lossless mode's verify passes: the draft tokens they checked and those they kept."""

    passes: int = 0
    drafted: int = 0
    accepted: int = 0

    def add(self, kept_from: str | None, drafted: int | None) -> None:
        if kept_from == "draft":
            self.accepted += 1
        elif kept_from == "high" and drafted is not None:  # a verify pass's own token
            self.passes += 1
            self.drafted += drafted

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    @property
    def tokens_per_pass(self) -> float | None:
        """Tokens kept per verify pass: its accepted drafts and its own token."""
        return (self.accepted + self.passes) / self.passes if self.passes else None


@dataclass
class DecodeTime:
    """Decode tokens and seconds (after each reply's first token) summed over replies."""

    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.seconds > 0 else None


class Readings:
    def __init__(self, capabilities: Capabilities | None = None, policy: PolicyConfig | None = None):
        self.gear_mode = GearMode.AUTO  # what the next reply will run in
        self.streaming_mode: GearMode | None = None  # what the reply streaming now runs in
        self.set_capabilities(capabilities, policy)
        self.new_session()

    def set_capabilities(
        self, capabilities: Capabilities | None, policy: PolicyConfig | None = None, high_gear_bits: int = 16
    ) -> None:
        """A new backend: its vocabulary sets the entropy scale and the default thresholds;
        `high_gear_bits`, what its high gear reads (32 for float32 weights on a CPU)."""
        self.capabilities = capabilities
        self.high_gear_bits = high_gear_bits
        # Forced high's and lossless mode's decode speed on this model, for their ratio
        self.decode_time = {GearMode.HIGH: DecodeTime(), GearMode.LOSSLESS: DecodeTime()}
        vocab = capabilities.vocab_size if capabilities else None
        self.max_bits = math.log2(vocab) if vocab else None
        if vocab:
            box = Gearbox(vocab, config=policy)
            self.low_bits, self.high_bits = box.default_low, box.default_high
        else:
            self.low_bits = self.high_bits = None
        self.default_thresholds = (self.low_bits, self.high_bits)

    def new_session(self) -> None:
        """A new chat: everything starts from zero."""
        self.entropy: deque[float] = deque(maxlen=ENTROPY_HISTORY)
        self.entropy_peak: float | None = None  # the highest entropy of the chat: the chart's scale covers it
        self.session_gears: Counter[Gear] = Counter()
        self.session_shifts = 0
        self.session_gate = GateCounts()
        self.session_verify = VerifyCounts()
        self.gear: Gear | None = None
        self.next_gear: Gear | None = None
        self.anomaly: str | None = None
        self.low_bits, self.high_bits = self.default_thresholds  # the last chat's calibration is its own
        self.replayed = False  # the figures come from a reopened chat's stored trace
        # The gear shown was made by another backend or model (a reopened chat's, or the last reply
        # before a switch): what its high gear read is that model's (the store keeps gears, not bits)
        self.gear_of_another_model = False
        self.new_reply(None)
        self.last_done: ReplyDone | None = None

    def new_reply(self, submitted_at: float | None, streaming_mode: GearMode | None = None) -> None:
        self.submitted_at = submitted_at
        self.streaming_mode = streaming_mode
        self.reply_gears: Counter[Gear] = Counter()
        self.reply_shifts = 0
        self.reply_gate = GateCounts()
        self.reply_verify = VerifyCounts()
        self.reply_tokens = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.step_ms_total = 0.0
        self.entropy_lower: float | None = None
        self.entropy_upper: float | None = None
        self.entropy_source: str | None = None
        self._previous_gear: Gear | None = None

    def add(self, at: float, event: TokenEvent) -> None:
        """One token event, stamped `at` (seconds, the worker's clock) when the backend yielded it."""
        if not event.is_token:
            return  # trailing text a detokenizer flushed: no forward pass behind it
        self.reply_tokens += 1
        self.gear_of_another_model = False
        self.first_token_at = self.first_token_at if self.first_token_at is not None else at
        self.last_token_at = at
        self.step_ms_total += event.step_ms
        self.next_gear, self.anomaly = event.next_gear, event.anomaly
        self._count(event.gear, event.driving_entropy)
        self._count_verify(event.kept_from, event.drafted)
        self.entropy_source = event.entropy_source
        self.entropy_lower, self.entropy_upper = event.entropy_bits_lower, event.entropy_bits_upper
        if event.thresholds_bits is not None:
            self.low_bits, self.high_bits = event.thresholds_bits
        if event.gate_survival is not None:
            self.reply_gate.add(event.gate_survival)
            self.session_gate.add(event.gate_survival)

    def _count(self, gear: Gear, entropy: float | None) -> None:
        self.gear = gear
        self.reply_gears[gear] += 1
        self.session_gears[gear] += 1
        if self._previous_gear is not None and gear != self._previous_gear:
            self.reply_shifts += 1
            self.session_shifts += 1
        self._previous_gear = gear
        if entropy is not None and math.isfinite(entropy):
            self.entropy.append(entropy)
            self.entropy_peak = entropy if self.entropy_peak is None else max(self.entropy_peak, entropy)

    def _count_verify(self, kept_from: str | None, drafted: int | None) -> None:
        self.reply_verify.add(kept_from, drafted)
        self.session_verify.add(kept_from, drafted)

    def end_reply(self, done: ReplyDone) -> None:
        self.last_done = done
        timed = self.decode_time.get(self.streaming_mode)
        if timed is not None and self.reply_tokens >= 2 and self.last_token_at > self.first_token_at:
            timed.tokens += self.reply_tokens - 1
            timed.seconds += self.last_token_at - self.first_token_at

    @property
    def lossless_speedup(self) -> tuple[float | None, str]:
        """Lossless mode's decode tokens/s over forced high's, both measured on this model in
        this session: (ratio, "") or (None, why not)."""
        lossless, high = (self.decode_time[m].tokens_per_s for m in (GearMode.LOSSLESS, GearMode.HIGH))
        if lossless is None or high is None:
            return None, "run " + " and ".join(n for n, r in (("high", high), ("lossless", lossless)) if r is None)
        return lossless / high, ""

    def replay(self, replies: Sequence[tuple[Sequence[TokenRow], ReplyDone | None]], another_model: bool = False) -> None:
        """A reopened chat: each stored reply's tokens and end, oldest first, counted as if they had
        just streamed. The store keeps no gate readings, calibrated thresholds or policy choices
        of the next gear, so those stay unknown; time figures come from the last reply's end.
        `another_model`: the last reply came from another backend or model than the one loaded."""
        self.new_session()
        self.replayed = bool(replies)
        for tokens, done in replies:
            self.new_reply(None)
            for token in tokens:
                self.reply_tokens += 1
                self.step_ms_total += token.step_ms or 0.0
                entropy = token.entropy_bits if token.entropy_bits is not None else token.entropy_bits_lower
                self._count(Gear.parse(token.gear), entropy)
                self._count_verify(token.kept_from, token.drafted)
            self.last_done = done
        self.gear_of_another_model = another_model and bool(replies)

    def bits_of(self, gear: Gear) -> int | None:
        """Bits per weight `gear` reads on this backend: the high gear reads the weights as loaded;
        None for a high-gear token that another model's weights made."""
        if gear is not Gear.HIGH:
            return gear.bits
        return None if self.gear_of_another_model else self.high_gear_bits

    @property
    def thresholds_calibrated(self) -> bool:
        """Whether the thresholds shown are the reply's own, moved from the defaults by its prompt."""
        return (self.low_bits, self.high_bits) != self.default_thresholds

    @property
    def entropy_now(self) -> float | None:
        return self.entropy[-1] if self.entropy else None

    @property
    def entropy_mean(self) -> float | None:
        recent = list(self.entropy)[-MEAN_WINDOW:]
        return sum(recent) / len(recent) if recent else None

    @property
    def ttft_s(self) -> float | None:
        """Submit to first token: prompt prefill plus the first decode step."""
        if self.first_token_at is None or self.submitted_at is None:
            return None
        return self.first_token_at - self.submitted_at

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate on the wall clock, first token to latest (prefill excluded)."""
        if self.reply_tokens < 2 or self.last_token_at == self.first_token_at:
            return None
        return (self.reply_tokens - 1) / (self.last_token_at - self.first_token_at)

    @property
    def ms_per_token(self) -> float | None:
        """Mean of the backend's own step times (forward pass to event)."""
        return self.step_ms_total / self.reply_tokens if self.reply_tokens else None
