"""What the Ollama and OpenAI-compatible backends share: one HTTP turn from request to ReplyDone.

A subclass names its endpoints, builds the chat request and turns each decoded stream
record into a `StreamPiece`; everything else lives here once: per-token entropy bounds,
per-turn gear routing, cancellation, and turning every fault into a ReplyDone that says
what went wrong, with the partial reply kept, so the backend is ready for the next turn.
Only the configured base URL is contacted: no redirects are followed and proxy
variables from the environment are ignored.
"""

from __future__ import annotations

import abc
import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from gearterm.backends.base import (
    Backend,
    BackendError,
    BackendFault,
    Capabilities,
    Event,
    GenerationParams,
    Message,
    Notice,
    Progress,
    ReplyDone,
    TokenEvent,
    continues_reply,
)
from gearterm.backends.gear_routing import EntropySource, GearRouter, gear_of, propose_gear_models
from gearterm.backends.http_stream import MalformedLine
from gearterm.backends.topk_entropy import ZERO_LOGPROB, EntropyBounds, entropy_bounds, is_speculative_draft
from gearterm.kernels.gear import Gear

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error response worth reading for its message
NEARLY_FULL = 0.9  # a conversation past this share of the server's context is told what comes next


@dataclass
class StreamPiece:
    """One decoded record of a reply stream, in terms both protocols share."""

    content: str = ""  # reply text this record adds
    logprobs: list | None = None  # per-token entries; None when the record has no logprobs field
    finish: str | None = None  # why generation stopped, on the record that says so
    end: bool = False  # the protocol's own end marker (Ollama `done`, SSE `[DONE]`)
    server_stats: dict = field(default_factory=dict)


class StreamFault(Exception):
    """A fault inside a reply: the message is what the user reads."""


class _Cancelled(Exception):
    pass


_END = object()


def error_text(body: bytes) -> str:
    """The message inside an error body: Ollama's {"error": "..."}, OpenAI's {"error": {"message"}}."""
    try:
        obj = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()[:500] or "(empty body)"
    if not isinstance(obj, dict):
        return str(obj)[:500]
    err = obj.get("error", obj.get("detail", obj.get("message")))
    if isinstance(err, dict):
        err = err.get("message") or json.dumps(err)
    return str(err if err is not None else obj)[:500]


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class HTTPBackend(Backend):
    """A model behind an HTTP server: top-k entropy bounds, one model variant per turn."""

    default_url: str
    server_label: str  # how messages name the server, e.g. "Ollama"
    start_hint: str = ""  # how to start the server, for the connection-refused message
    when_full: str = ""  # what the server does with a conversation past its context, and how to raise it

    def __init__(
        self,
        model: str,
        url: str | None = None,
        *,
        top_logprobs: int = 20,
        vocab_size: int | None = None,
        entropy_source: EntropySource = "lower",
        gear_models: Mapping[str, str] | None = None,
        window_tokens: int = 32,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
    ):
        super().__init__()
        if top_logprobs < 1:
            raise BackendError(f"top_logprobs must be at least 1 to bound the entropy, got {top_logprobs}")
        self.requested_model = model  # "": the one model the server lists, where it lists one
        self.url = self.normalize_url(url or self.default_url)
        self.top_logprobs = top_logprobs
        self.configured_vocab_size = vocab_size
        self.entropy_source = entropy_source
        self.configured_gear_models = dict(gear_models or {})
        self.window_tokens = window_tokens
        self.timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self.model: str | None = None  # the name as the server lists it, once loaded
        self.listed: dict = {}  # the server's list entry for the model, once loaded
        self.vocab_size: int | None = None
        self.max_positions: int | None = None  # the server's context, where it says (llama.cpp does)
        self.router: GearRouter | None = None
        self._last_model: str | None = None
        self._unsaid: list[Notice] = []  # said once, on the first turn after load()
        self._said_nearly_full = False  # once a conversation
        self._wake = None  # (loop, event) of the reply in flight, for cancel() from any thread

    @staticmethod
    def normalize_url(url: str) -> str:
        return url.rstrip("/")

    # ---- what a protocol supplies -------------------------------------------------

    @abc.abstractmethod
    def list_models(self, client: httpx.Client) -> list[dict]:
        """The server's model entries (each with at least "name")."""

    def resolve_model(self, model: str, names: Sequence[str]) -> str | None:
        """The listed name `model` refers to, or None."""
        return model if model in names else None

    @abc.abstractmethod
    def read_vocab_size(self, client: httpx.Client, entry: dict) -> int | None:
        """The vocabulary size the server reports for the model, or None."""

    def read_context(self, client: httpx.Client) -> int | None:
        """The positions of context the server holds for a conversation, where it says; else None."""
        return None

    async def read_context_after_reply(self, client: httpx.AsyncClient, model: str) -> int | None:
        """The context as the server holds it once `model` has answered, where only then it
        says (Ollama loads a model, and sizes its context, at its first request); else None."""
        return None

    @abc.abstractmethod
    def chat_request(self, model: str, messages: Sequence[Message], params: GenerationParams) -> tuple[str, dict]:
        """The path and JSON body of a streaming chat request."""

    @abc.abstractmethod
    def decoder(self):
        """A fresh incremental decoder of the response body (feed/finish)."""

    @abc.abstractmethod
    def piece(self, record) -> StreamPiece | None:
        """One decoded record as a StreamPiece (None to skip); StreamFault if it reports a fault."""

    def no_logprobs_notice(self) -> str:
        return f"{self.server_label} returned no logprobs: entropy is unknown for this reply"

    def continue_notice(self) -> str | None:
        """What to say when asked to continue a reply (a last message of the assistant's) on a
        server that may not continue it; None where the server's API does."""
        return None

    # ---- the Backend protocol ------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.model or self.requested_model

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            entropy="topk", gears="per_turn", hidden_states=False, vocab_size=self.vocab_size, device=self.url
        )

    def request_json(self, client: httpx.Client, method: str, path: str, **kwargs) -> dict:
        """A JSON object from the server; BackendError (with the server's message) otherwise."""
        response = client.request(method, path, **kwargs)
        if response.status_code != 200:
            raise BackendError(
                f"{self.server_label} at {self.url} answered HTTP {response.status_code} to {path}: "
                f"{error_text(response.content[:ERROR_BODY_LIMIT])}"
            )
        try:
            obj = response.json()
        except ValueError:
            raise BackendError(f"{self.server_label} at {self.url} sent no JSON for {path}") from None
        if not isinstance(obj, dict):
            raise BackendError(f"{self.server_label} at {self.url} sent no JSON object for {path}")
        return obj

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=self.timeout, trust_env=False, follow_redirects=False)

    def load(self, progress: Progress | None = None) -> None:
        report = progress or (lambda fraction, text: None)
        report(0.0, f"asking {self.server_label} at {self.url} for its models")
        try:
            with self.client() as client:
                entries = self.list_models(client)
                names = [e["name"] for e in entries]
                model = self._chosen_model(names)
                report(0.5, f"reading {model}'s vocabulary size")
                entry = self.listed = next(e for e in entries if e["name"] == model)
                vocab = self.configured_vocab_size or self.read_vocab_size(client, entry)
                self.max_positions = self.read_context(client)
        except httpx.HTTPError as e:
            raise BackendFault(self.describe(e)) from None
        except (ValueError, KeyError, TypeError) as e:
            raise BackendError(f"{self.server_label} at {self.url} answered in an unexpected shape ({e})") from None

        if self.configured_gear_models:
            try:
                gear_models = {Gear.parse(g): name for g, name in self.configured_gear_models.items()}
            except ValueError as e:
                raise BackendError(f"gear models: {e}") from None
            missing = [name for name in gear_models.values() if self.resolve_model(name, names) is None]
            if missing:
                raise BackendError(f"gear models not on {self.server_label} at {self.url}: {', '.join(missing)}")
            gear_models = {g: self.resolve_model(name, names) for g, name in gear_models.items()}
            for gear in Gear:  # an unmapped gear runs the chosen model
                gear_models.setdefault(gear, model)
        else:
            gear_models = propose_gear_models(model, names)
        try:
            self.router = GearRouter(
                gear_models, gear_of(model, gear_models), vocab, self.entropy_source, self.window_tokens
            )
        except ValueError as e:
            raise BackendError(f"{e} ({self.server_label} at {self.url} does not report it)") from None
        self.model, self.vocab_size, self._last_model = model, vocab, None
        self._unsaid = []
        if vocab is None:
            self._unsaid.append(
                Notice(
                    f"{self.server_label} does not report the vocabulary size: the upper entropy bound is "
                    "unknown and the gear thresholds use the 32k-vocabulary defaults",
                    "warning",
                )
            )
        variants = sorted(set(gear_models.values()))
        if len(variants) > 1:
            mapping = ", ".join(f"{g.label} {gear_models[g]}" for g in Gear)
            self._unsaid.append(Notice(f"gears route whole turns to model variants: {mapping}"))
        report(1.0, f"{model} ready on {self.url}")

    def _chosen_model(self, names: Sequence[str]) -> str:
        """The listed name of the model asked for; with none named, the server's one model (a
        llama.cpp server serves the model it was started with)."""
        listed = ", ".join(names) if names else "none"
        if not self.requested_model:
            if len(names) == 1:
                return names[0]
            raise BackendError(
                f"the {self.name} backend needs a model name (--model, or model in config.toml): "
                f"{self.server_label} at {self.url} lists {listed}"
            )
        model = self.resolve_model(self.requested_model, names)
        if model is None:
            where = f"{self.server_label} at {self.url}"
            raise BackendError(f"model {self.requested_model!r} not found on {where}; it lists: {listed}")
        return model

    def cancel(self) -> None:
        super().cancel()
        wake = self._wake
        if wake is not None:
            loop, event = wake
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop has closed: the reply is over anyway
                pass

    def describe(self, e: Exception) -> str:
        """A fault of the HTTP layer, in words a user can act on."""
        where = f"{self.server_label} at {self.url}"
        if isinstance(e, httpx.ConnectError):
            return f"cannot connect to {where} ({e or 'connection refused'}): is it running? {self.start_hint}".strip()
        if isinstance(e, httpx.ConnectTimeout):
            return f"connecting to {where} timed out after {self.timeout.connect:g} s"
        if isinstance(e, httpx.ReadTimeout):
            return f"{where} sent nothing for {self.timeout.read:g} s (read timeout)"
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return f"the connection to {where} broke mid-reply ({e})"
        return f"request to {where} failed: {type(e).__name__}: {e}"

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Event]:
        self._cancel.clear()
        if self.router is None:
            error = f"the {self.name} backend is not loaded: call load() first"
            yield ReplyDone("error", 0, 0.0, error=error, stats={"partial": False})
            return
        for notice in self._unsaid:
            yield notice
        self._unsaid = []
        if continues_reply(messages) and (note := self.continue_notice()):
            yield Notice(note, "warning")
        if not any(m.get("role") == "assistant" for m in messages):
            self.router.reset()  # a new conversation: its routing starts over
            self._said_nearly_full = False
        gear, model = self.router.begin_turn(params.gear_mode)
        if self._last_model is not None and model != self._last_model:
            yield Notice(f"{gear.label} gear: this turn runs {model}")
        self._last_model = model

        turn = _Turn(self, gear, model)
        loop = asyncio.get_running_loop()
        cancelled = asyncio.Event()
        self._wake = (loop, cancelled)
        if self._cancel.is_set():  # cancel() came while the notices above were handed out
            cancelled.set()
        path, body = self.chat_request(model, messages, params)
        reason, error = None, None
        try:
            async with httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout, trust_env=False, follow_redirects=False
            ) as client:
                request = client.build_request("POST", path, json=body)
                # A server may take minutes to answer (Ollama loads the model first): cancellable too.
                response = await self._unless_cancelled(client.send(request, stream=True), cancelled)
                try:
                    if response.status_code != 200:
                        raise StreamFault(await self._status_fault(response, model))
                    decoder = self.decoder()
                    chunks = response.aiter_bytes()
                    while not turn.ended:
                        chunk = await self._unless_cancelled(anext(chunks, _END), cancelled)
                        records = decoder.finish() if chunk is _END else decoder.feed(chunk)
                        for event in turn.take_all(records):
                            yield event
                        if chunk is _END:
                            break
                finally:
                    await response.aclose()
                if turn.finish is not None:
                    try:
                        self.max_positions = await self.read_context_after_reply(client, model) or self.max_positions
                    except httpx.HTTPError:  # the reply is whole all the same; the context stays as known
                        pass
            if turn.finish is None:
                raise StreamFault(
                    f"{self.server_label} closed the stream before the reply ended "
                    f"(after {turn.tokens} tokens)"
                )
            reason = "length" if turn.finish == "length" else "stop"
        except _Cancelled:
            reason = "cancelled"
        except StreamFault as e:
            reason, error = "error", str(e)
        except httpx.HTTPError as e:
            reason, error = "error", self.describe(e)
        finally:
            self._wake = None
        for event in turn.flush():
            yield event
        done = turn.done(reason, error)
        if (note := self._nearly_full(done.positions, model)) is not None:
            yield note
        yield done  # a fault's message is said here, once

    def _nearly_full(self, positions: int | None, model: str) -> Notice | None:
        """Said once a conversation, when it fills most of the server's context."""
        context = self.max_positions
        if self._said_nearly_full or not positions or not context or positions < NEARLY_FULL * context:
            return None
        self._said_nearly_full = True
        return Notice(
            f"this conversation fills {positions:,} of the {context:,} positions {self.server_label} holds for "
            f"{model}: {self.when_full}", "warning"
        )

    async def _status_fault(self, response: httpx.Response, model: str) -> str:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
        status = response.status_code
        where = f"{self.server_label} at {self.url}"
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            return f"{where} answered HTTP {status} (redirect to {target}); not followed: only {self.url} is contacted"
        message = error_text(body)
        if status == 404 and "model" in message.lower():
            return f"model {model!r} not found on {where}: {message}"
        return f"{where} answered HTTP {status}: {message}"

    async def _unless_cancelled(self, awaitable, cancelled: asyncio.Event):
        """Await `awaitable`, or raise _Cancelled as soon as cancel() is called, even while
        the server is silent."""
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(cancelled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the consumer itself was cancelled
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task.done():
            return task.result()  # a cancel that came with it is seen at the next await
        task.cancel()
        await asyncio.wait({task})  # let the read unwind before the response closes
        raise _Cancelled


class _Turn:
    """One reply's state: turns stream pieces into TokenEvents, counts, keeps the text aligned.

    Each logprob entry becomes one TokenEvent; the reply's text is exactly the server's
    content, split over the tokens it matches. Text a logprob-bearing stream sends without
    entries is held for the next tokens (Ollama may hold text back, e.g. at a possible stop
    sequence, while its logprobs come on lines with empty content)."""

    def __init__(self, backend: HTTPBackend, gear: Gear, model: str):
        self.backend = backend
        self.router = backend.router
        self.gear, self.model = gear, model
        self.start = self.last = time.perf_counter()
        self.first_token_s: float | None = None
        self.tokens = self.with_bounds = self.speculative = 0
        self.seen_logprobs = False
        self.said_no_logprobs = False
        self.held_text = ""
        self.finish: str | None = None
        self.ended = False
        self.server_stats: dict = {}

    def take_all(self, records) -> Iterator[Event]:
        """Events of the records in order; a faulty record raises after those before it."""
        label = self.backend.server_label
        for record in records:
            if isinstance(record, MalformedLine):
                raise StreamFault(f"{label} sent a malformed line ({record.error}): {record.raw[:200]!r}")
            try:
                piece = self.backend.piece(record)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                raise StreamFault(f"{label} sent a line in an unexpected shape ({type(e).__name__}: {e})") from None
            if piece is not None:
                yield from self._take(piece)
            if self.ended:
                return

    def _take(self, piece: StreamPiece) -> list[Event]:
        events: list[Event] = []
        now = time.perf_counter()
        entries = piece.logprobs or []
        if piece.logprobs is not None:
            self.seen_logprobs = True
        if entries:
            pool = self.held_text + piece.content
            self.held_text = ""
            step_ms = (now - self.last) * 1e3 / len(entries)
            for i, entry in enumerate(entries):
                if i < len(entries) - 1:
                    token_text = entry.get("token") or ""
                    text = token_text if token_text and pool.startswith(token_text) else ""
                    pool = pool[len(text) :]
                else:
                    text = pool
                events.append(self._token(entry, text, step_ms))
        elif piece.content:
            if self.seen_logprobs:
                self.held_text += piece.content
            else:
                if not self.said_no_logprobs:
                    self.said_no_logprobs = True
                    events.append(Notice(self.backend.no_logprobs_notice(), "warning"))
                events.append(self._plain_token(piece.content, (now - self.last) * 1e3))
        if entries or piece.content:
            self.last = now
        if piece.finish is not None:
            self.finish = piece.finish
        self.server_stats.update(piece.server_stats)
        if piece.end:
            self.ended = True
            self.finish = self.finish or "stop"
        return events

    def _count(self) -> None:
        self.tokens += 1
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.start

    def _token(self, entry: dict, text: str, step_ms: float) -> TokenEvent:
        logprob = _number(entry.get("logprob"))
        alternatives = entry.get("top_logprobs") or []
        bounds: EntropyBounds | None = None
        flags: tuple[str, ...] = ()
        if is_speculative_draft(logprob, alternatives):
            flags = ("speculative",)
            self.speculative += 1
        elif alternatives or logprob is not None:
            listed = [lp for a in alternatives if (lp := _number(a.get("logprob"))) is not None]
            if logprob is not None and not any(_same_token(entry, a) for a in alternatives):
                listed.append(logprob)  # a sampled token outside the top k is one more known probability
            bounds = entropy_bounds(listed, self.backend.vocab_size)
        decision = self.router.observe(bounds) if bounds is not None else None
        self._count()
        if bounds is not None:
            self.with_bounds += 1
        return TokenEvent(
            text=text,
            token_id=entry.get("id") if isinstance(entry.get("id"), int) else None,
            gear=self.gear,
            next_gear=decision.gear if decision else self.router.next_gear,
            entropy_bits=bounds.lower_bits if bounds is not None and bounds.exact else None,
            step_ms=step_ms,
            logprob=logprob if logprob is not None and logprob > ZERO_LOGPROB else None,
            entropy_bits_lower=bounds.lower_bits if bounds else None,
            entropy_bits_upper=bounds.upper_bits if bounds else None,
            missing_mass=bounds.missing_mass if bounds else None,
            entropy_source=self.router.entropy_source if bounds else None,
            anomaly=decision.anomaly if decision else None,
            flags=flags,
        )

    def _plain_token(self, text: str, step_ms: float) -> TokenEvent:
        """A token from a server that sends no logprobs: its text and nothing made up."""
        self._count()
        return TokenEvent(
            text=text,
            token_id=None,
            gear=self.gear,
            next_gear=self.router.next_gear,
            entropy_bits=None,
            step_ms=step_ms,
            entropy_source=None,
        )

    def flush(self) -> list[Event]:
        """Held text never matched by a later token still belongs to the reply."""
        if not self.held_text:
            return []
        text, self.held_text = self.held_text, ""
        return [
            TokenEvent(text, None, self.gear, self.router.next_gear, None, 0.0, entropy_source=None, flags=("text-only",))
        ]

    def done(self, reason: str, error: str | None) -> ReplyDone:
        return ReplyDone(
            reason=reason,
            tokens=self.tokens,
            seconds=time.perf_counter() - self.start,
            first_token_s=self.first_token_s,
            error=error,
            positions=self.server_stats.get("total_tokens"),  # the prompt's tokens and the reply's, where told
            stats={
                "partial": reason in ("error", "cancelled"),
                "model": self.model,
                "gear": self.gear.label,
                "next_gear": self.router.next_gear.label,
                "logprobs": self.seen_logprobs,
                "tokens_with_bounds": self.with_bounds,
                "speculative": self.speculative,
                **self.server_stats,
            },
        )


def _same_token(entry: dict, alternative: dict) -> bool:
    """Whether a top-k alternative is the sampled token: by id where both have one, else by text."""
    if isinstance(entry.get("id"), int) and isinstance(alternative.get("id"), int):
        return entry["id"] == alternative["id"]
    return entry.get("token") == alternative.get("token") and entry.get("bytes") == alternative.get("bytes")

