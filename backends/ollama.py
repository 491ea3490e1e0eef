"""Ollama's native API: models from /api/tags, replies streamed as NDJSON from /api/chat.

Since Ollama 0.12.11 a chat request with `logprobs: true, top_logprobs: N` (N <= 20) gets a
`logprobs` array on each streamed line, one entry per token:
{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}, ...]}
(no token ids). A line may carry several entries, or entries with empty `content`.
Older servers send no logprobs; that is detected per reply and said, not papered over.
A reply is continued by sending it as the last message, the assistant's: /api/chat goes on
with a trailing assistant message (the maintainers' answer in ollama/ollama#6778).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from gearterm.backends.base import BackendError, GenerationParams, Message
from gearterm.backends.http_backend import HTTPBackend, StreamFault, StreamPiece
from gearterm.backends.http_stream import NDJSONDecoder

DEFAULT_URL = "http://127.0.0.1:11434"
MAX_TOP_LOGPROBS = 20  # Ollama allows 0..20
CONTEXT_READ_TIMEOUT_S = 5.0  # /api/ps after a reply: a slow answer must not hold the reply's end


class OllamaBackend(HTTPBackend):
    name = "ollama"
    default_url = DEFAULT_URL
    server_label = "Ollama"
    start_hint = "Start it with `ollama serve`."
    when_full = "past them Ollama drops the oldest part of the prompt without saying so (OLLAMA_CONTEXT_LENGTH raises it)"

    def __init__(self, model: str, url: str | None = None, *, top_logprobs: int = MAX_TOP_LOGPROBS, **options):
        super().__init__(model, url, top_logprobs=min(top_logprobs, MAX_TOP_LOGPROBS), **options)
        self.version: str | None = None

    def list_models(self, client: httpx.Client) -> list[dict]:
        models = self.request_json(client, "GET", "/api/tags")["models"]
        try:  # only to name the version in the no-logprobs message
            self.version = self.request_json(client, "GET", "/api/version").get("version")
        except BackendError:
            self.version = None
        return models

    def resolve_model(self, model: str, names: Sequence[str]) -> str | None:
        """Ollama names without a tag mean `:latest`."""
        for candidate in (model, f"{model}:latest"):
            if candidate in names:
                return candidate
        return None

    def read_vocab_size(self, client: httpx.Client, entry: dict) -> int | None:
        """`/api/show` reports `<architecture>.vocab_size` in model_info for most architectures."""
        try:
            info = self.request_json(client, "POST", "/api/show", json={"model": entry["name"]}).get("model_info")
        except BackendError:
            return None
        sizes = [v for k, v in (info or {}).items() if k.endswith(".vocab_size") and isinstance(v, int)]
        return sizes[0] if sizes else None

    def chat_request(self, model: str, messages: Sequence[Message], params: GenerationParams) -> tuple[str, dict]:
        options = {"num_predict": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            options["seed"] = params.seed
        body = {
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "options": options,
        }
        return "/api/chat", body

    def decoder(self) -> NDJSONDecoder:
        return NDJSONDecoder()

    def piece(self, record: dict) -> StreamPiece:
        if "error" in record:
            raise StreamFault(f"Ollama reported an error mid-reply: {record['error']}")
        message = record.get("message") or {}
        done = bool(record.get("done"))
        stats = {}
        if done:
            stats = {k: record[k] for k in ("eval_count", "prompt_eval_count", "eval_duration") if k in record}
            prompt, reply = record.get("prompt_eval_count"), record.get("eval_count")
            if isinstance(prompt, int) and isinstance(reply, int):
                # The positions the conversation fills: since ollama/ollama#5371 the prompt's count
                # includes its cached tokens (before it, a cached prompt reported none).
                stats["total_tokens"] = prompt + reply
        return StreamPiece(
            content=message.get("content") or "",
            logprobs=record.get("logprobs"),
            finish=(record.get("done_reason") or "stop") if done else None,
            end=done,
            server_stats=stats,
        )

    async def read_context_after_reply(self, client: httpx.AsyncClient, model: str) -> int | None:
        """A loaded model's context_length in /api/ps (Ollama sizes it when it loads the model:
        OLLAMA_CONTEXT_LENGTH, or by the GPU's memory); None from servers that do not list it."""
        response = await client.get("/api/ps", timeout=CONTEXT_READ_TIMEOUT_S)
        try:
            running = response.json()["models"] if response.status_code == 200 else []
            length = next((m.get("context_length") for m in running if model in (m.get("name"), m.get("model"))), None)
        except (ValueError, KeyError, TypeError, AttributeError):  # not the shape documented: not known
            return None
        return length if isinstance(length, int) and length > 0 else None

    def no_logprobs_notice(self) -> str:
        version = f" {self.version}" if self.version else ""
        return (
            f"Ollama{version} returned no logprobs, so entropy is unknown for this reply; "
            "per-token entropy needs Ollama 0.12.11 or newer"
        )
