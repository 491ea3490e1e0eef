"""The backend protocol: what every model runtime gives the app, and the events it streams."""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from gearterm.backends.context_fit import fit
from gearterm.backends.gearbox import GearMode
from gearterm.backends.limits import out_of_range
from gearterm.kernels.gear import Gear

# transformers warns on stderr when a prompt is longer than the model's context; generate() cuts
# such a prompt and says so in a Notice of its own, so the warning would be a second, wrong line.
logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)

Message = dict  # {"role": "user" | "assistant" | "system", "content": str}
Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)


def continues_reply(messages: Sequence[Message]) -> bool:
    """Whether `messages` ask to continue a reply: the last one is the assistant's unfinished text."""
    return bool(messages) and messages[-1].get("role") == "assistant"


class BackendError(Exception):
    """A failure a user can act on; the message says what happened and what to do."""


class BackendFault(BackendError):
    """A failure that is no fault of what the user asked for: a server down or silent."""


@dataclass(frozen=True)
class Capabilities:
    entropy: Literal["exact", "topk"]  # full-vocabulary entropy, or bounds from top-k logprobs
    gears: Literal["per_token", "per_turn"]  # weights shifted per token, or a model variant per turn
    hidden_states: bool  # can feed the activation entropy gate
    vocab_size: int | None  # None when a server does not say
    device: str = "cpu"
    # The share of the decoder layers' projection weights held in gears; None where the
    # backend does not gear weights itself (a server routes to model variants).
    geared_share: float | None = None


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    gear_mode: GearMode = GearMode.AUTO
    # Lossless mode (backends.lossless): the gear that drafts (None: low or mid, whichever costs
    # less time per kept token, measured: backends.draft_choice), and the longest draft a cycle makes
    lossless_draft: Gear | None = Gear.LOW
    lossless_max_draft: int = 8
    # A draft token drawn where the draft gear's entropy is above the policy's high threshold
    # ends the draft (faster on real text: docs/benchmarks/lossless-cpu.md; bench lossless
    # times both)
    draft_entropy_stop: bool = True

    def __post_init__(self) -> None:
        for name in ("max_tokens", "temperature", "top_p", "seed", "lossless_max_draft"):
            value = getattr(self, name)
            if value is not None and (problem := out_of_range(name, value)):
                raise ValueError(f"{name.replace('_', ' ')} {problem}")


@dataclass
class TokenEvent:
    """One generated token and everything measured about the step that produced it."""

    text: str  # the text this token adds (may be "" while a multi-byte character is incomplete)
    token_id: int | None
    gear: Gear  # the gear the forward pass that produced this token read
    next_gear: Gear  # what the policy chose for the next step
    entropy_bits: float | None  # exact entropy of this step's distribution; None over top-k
    step_ms: float  # wall time of this step, forward pass to event
    logprob: float | None = None
    varentropy_bits2: float | None = None
    entropy_bits_lower: float | None = None  # top-k backends: H_lb
    entropy_bits_upper: float | None = None  # top-k backends: H_lb + r ln(V - k); None if V unknown
    missing_mass: float | None = None  # top-k backends: 1 - sum of the top-k probabilities
    entropy_source: Literal["exact", "lower", "upper"] | None = "exact"  # which drives the gear
    anomaly: str | None = None  # why the anomaly guard forced the high gear, if it did
    gate_survival: tuple[bool, ...] | None = None  # per decoder layer: did this token pass the gate
    # The policy's low and high entropy thresholds for this reply (local backends calibrate
    # them to each prompt); None where the backend does not say
    thresholds_bits: tuple[float, float] | None = None
    # Lossless mode: "draft", a drafted token the high gear's verify pass accepted; "high", the
    # high gear's own token (a verify pass's correction or its token after a wholly accepted
    # draft, or the reply's first token, from the prompt's pass); None in other modes
    kept_from: Literal["draft", "high"] | None = None
    drafted: int | None = None  # on a verify pass's own token: the draft tokens that pass checked
    # "speculative": a drafted token with no alternatives; "text-only": text a detokenizer
    # held back until the reply ended, with no forward pass of its own
    flags: tuple[str, ...] = ()

    @property
    def is_token(self) -> bool:
        return "text-only" not in self.flags

    @property
    def driving_entropy(self) -> float | None:
        """The entropy figure the gear policy ran on for this token."""
        return {
            "exact": self.entropy_bits,
            "lower": self.entropy_bits_lower,
            "upper": self.entropy_bits_upper,
        }.get(self.entropy_source or "")


@dataclass
class Notice:
    """Something the user should see that is not a token: a missing reading, a fault."""

    text: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass
class PromptRead:
    """How much of a long prompt a local backend has run, between its steps: the wait before the
    first token, counted. `total` is the prompt's positions the cache did not hold already."""

    done: int
    total: int


@dataclass
class ReplyDone:
    """The last event of every reply, however it ended."""

    reason: Literal["stop", "length", "context full", "cancelled", "error"]
    tokens: int
    seconds: float
    first_token_s: float | None = None  # time to first token
    error: str | None = None
    stats: dict = field(default_factory=dict)
    # Context positions the conversation fills once the reply ended (its prompt and reply
    # tokens): what the next turn starts from. None where the backend does not count them.
    positions: int | None = None


Event = TokenEvent | Notice | PromptRead | ReplyDone


@dataclass
class TeacherForced:
    """Scores of real text under one gear mode: what `bench quality` tabulates."""

    logprobs: list[float]  # natural log p(actual next token), one per predicted position
    top1: list[int]  # the model's most likely next token at each position
    gears: list[Gear]  # the gear the forward pass at each position read
    shifts: int


class Backend(abc.ABC):
    """A model runtime. Load once, then stream replies; cancel() may be called from any thread."""

    name: str = "backend"

    def __init__(self) -> None:
        self._cancel = threading.Event()

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    @abc.abstractmethod
    def model_name(self) -> str: ...

    @abc.abstractmethod
    def load(self, progress: Progress | None = None) -> None:
        """Load the model; raise BackendError with a readable message on failure."""

    def unload(self) -> None:
        """Free what load() took."""

    @abc.abstractmethod
    def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Event]:
        """Stream the reply to `messages`: TokenEvents, Notices, then one ReplyDone."""

    def cancel(self) -> None:
        self._cancel.set()

    def memory_bytes(self) -> int | None:
        """Memory the loaded model holds (all gears resident), or None if not known."""
        return None


class LocalBackend(Backend):
    """A backend that computes in this process with its own tokenizer: a blocking
    generate(), run in a thread. Subclasses set `tokenizer` and `max_positions` in load()."""

    tokenizer = None
    max_positions: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.load_notices: list[Notice] = []  # what load() found that the user should know

    def _require_loaded(self) -> None:
        if self.tokenizer is None:
            raise BackendError("the model is not loaded yet")

    def encode_text(self, text: str) -> list[int]:
        """Plain text to ids, starting with BOS where the model has one (for scoring text)."""
        self._require_loaded()
        ids = list(self.tokenizer.encode(text))
        bos = self.tokenizer.bos_token_id
        return ids if bos is None or ids[:1] == [bos] else [bos, *ids]

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        """Prompt ids through the tokenizer's chat template where it has one. A last message of
        the assistant's is the unfinished start of the reply: the prompt ends with its text, not
        with the end of its turn, so the model goes on with it."""
        self._require_loaded()
        continuing = continues_reply(messages)
        if getattr(self.tokenizer, "chat_template", None):
            turn = {"continue_final_message": True} if continuing else {"add_generation_prompt": True}
            try:
                ids = self.tokenizer.apply_chat_template(list(messages), tokenize=True, **turn)
            except ValueError:  # transformers': the template rewrites the reply's text, so no prompt ends with it
                if not continuing:
                    raise
                raise BackendError("this model's chat template cannot continue a reply: it rewrites the reply's text") from None
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return list(ids)
        return list(self.tokenizer.encode("\n\n".join(m["content"] for m in messages)))

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        """Blocking generation; checks the cancel flag before every step."""
        self._require_loaded()
        self._cancel.clear()
        if not any(m.get("content", "").strip() for m in messages):
            raise BackendError("the prompt is empty")
        while self.load_notices:  # said once, with the first reply after the load
            yield self.load_notices.pop(0)
        if not self.max_positions:
            ids, max_tokens = self.encode_chat(messages), params.max_tokens
        else:
            fitted = fit(messages, self.encode_chat, self.max_positions, params.max_tokens)
            ids, max_tokens = fitted.ids, fitted.max_tokens
            context = f"the {self.max_positions:,}-token context"
            if fitted.dropped_turns:
                yield Notice(f"earlier turns no longer fit {context}: the model sees the last "
                             f"{len(messages) - fitted.dropped_turns} messages", "warning")
            if fitted.cut_to:
                yield Notice(f"the newest message is too long for {context}: the model sees its last {fitted.cut_to} tokens", "warning")
        for event in self._generate(ids, replace(params, max_tokens=max_tokens)):
            if isinstance(event, ReplyDone):
                event.positions = len(ids) + event.tokens
                if event.reason == "length" and max_tokens < params.max_tokens:
                    event.reason = "context full"  # it stopped where the context ends, not at max tokens
            yield event

    def _generate(self, ids: list[int], params: GenerationParams) -> Iterator[Event]:
        """The reply to prompt `ids`: TokenEvents, Notices, then one ReplyDone."""
        raise NotImplementedError

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        end = object()

        def produce() -> None:
            tokens = 0
            try:
                for event in self.generate(messages, params):
                    tokens += isinstance(event, TokenEvent)
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except Exception as e:  # a fault ends the reply like any other end, partial text kept
                error = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {e}"
                loop.call_soon_threadsafe(queue.put_nowait, ReplyDone("error", tokens, 0.0, error=error))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, end)

        worker = threading.Thread(target=produce, name=f"{self.name}-generate", daemon=True)
        worker.start()
        try:
            while (event := await queue.get()) is not end:
                yield event
        finally:
            self.cancel()  # an abandoned stream must not leave the thread generating
            await asyncio.to_thread(worker.join)
