"""Any OpenAI-compatible server (llama.cpp's llama-server, vLLM, ...): /v1/models and streamed
/v1/chat/completions as server-sent events, `data: {chunk}` lines ending with `data: [DONE]`.

Each chunk's `choices[0].logprobs.content` holds one entry per token with its `top_logprobs`.
llama.cpp adds token ids and, in /v1/models, the vocabulary size (`meta.n_vocab`); it does
not cap `top_logprobs` (it returns up to the whole vocabulary), where OpenAI caps it at 20.

A reply is continued by sending it as the last message, the assistant's. llama.cpp's server
goes on with such a message by itself (unless started with --no-prefill-assistant) and
streams only the new text; vLLM and SGLang do when asked with `continue_final_message`.
Which server answers is read from `owned_by` in /v1/models; OpenAI's own API and servers
not known here may start a new answer instead, and the user is told so.

The stream's last chunk carries the usage (asked for with `stream_options`): its total_tokens are
the positions the conversation fills, which the status bar's context meter shows; llama.cpp also
says its context (n_ctx) in /props.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx

from gearterm.backends.base import BackendError, GenerationParams, Message, continues_reply
from gearterm.backends.http_backend import HTTPBackend, StreamFault, StreamPiece, error_text
from gearterm.backends.http_stream import ServerEvent, SSEDecoder

DEFAULT_URL = "http://127.0.0.1:8080"  # llama-server's default
CONTINUING_SERVERS = {"llamacpp": "llama.cpp", "vllm": "vLLM", "sglang": "SGLang"}  # owned_by -> name


class OpenAIBackend(HTTPBackend):
    name = "openai"
    default_url = DEFAULT_URL
    server_label = "the OpenAI-compatible server"
    # Said only where the context is known, which is llama.cpp's server (read_context).
    when_full = "past them llama.cpp refuses the request or shifts out old tokens, as it was started (--ctx-size sets it)"

    @staticmethod
    def normalize_url(url: str) -> str:
        """Users often paste the API root (".../v1"); requests add /v1 themselves."""
        url = url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def list_models(self, client: httpx.Client) -> list[dict]:
        return [{**entry, "name": entry["id"]} for entry in self.request_json(client, "GET", "/v1/models")["data"]]

    def read_vocab_size(self, client: httpx.Client, entry: dict) -> int | None:
        n_vocab = (entry.get("meta") or {}).get("n_vocab")
        return n_vocab if isinstance(n_vocab, int) and n_vocab > 1 else None

    def read_context(self, client: httpx.Client) -> int | None:
        """llama.cpp's server says its context (a slot's n_ctx) in /props; other servers do not."""
        if self.listed.get("owned_by") != "llamacpp":
            return None
        try:
            n_ctx = self.request_json(client, "GET", "/props")["default_generation_settings"]["n_ctx"]
        except (BackendError, httpx.HTTPError, KeyError, TypeError):  # not said: the context is not known
            return None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None

    def chat_request(self, model: str, messages: Sequence[Message], params: GenerationParams) -> tuple[str, dict]:
        body = {
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            # A last chunk with the usage: total_tokens, the positions the conversation fills.
            "stream_options": {"include_usage": True},
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if continues_reply(messages):  # vLLM's and SGLang's names; llama.cpp needs neither and ignores them
            body.update(continue_final_message=True, add_generation_prompt=False)
        return "/v1/chat/completions", body

    def continue_notice(self) -> str | None:
        if self.listed.get("owned_by") in CONTINUING_SERVERS:
            return None
        known = ", ".join(CONTINUING_SERVERS.values())
        return (
            f"{self.server_label} at {self.url} is not one known to continue a reply ({known} are): "
            "it may start a new answer, which is added to the reply all the same"
        )

    def decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def piece(self, record: ServerEvent) -> StreamPiece | None:
        if record.event == "error":
            raise StreamFault(f"{self.server_label} reported an error mid-reply: {error_text(record.data.encode())}")
        if record.data.strip() == "[DONE]":
            return StreamPiece(end=True)
        try:
            chunk = json.loads(record.data)
        except ValueError as e:
            raise StreamFault(f"{self.server_label} sent malformed data ({e}): {record.data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise StreamFault(f"{self.server_label} sent data that is not a JSON object: {record.data[:200]!r}")
        if "error" in chunk:
            raise StreamFault(f"{self.server_label} reported an error mid-reply: {error_text(record.data.encode())}")
        usage = chunk.get("usage") or {}
        stats = {k: usage[k] for k in ("completion_tokens", "total_tokens") if isinstance(usage.get(k), int)}
        choices = chunk.get("choices") or []
        if not choices:
            return StreamPiece(server_stats=stats)
        choice = choices[0]
        logprobs = choice.get("logprobs")
        return StreamPiece(
            content=(choice.get("delta") or {}).get("content") or "",
            logprobs=logprobs.get("content") if isinstance(logprobs, dict) else None,
            finish=choice.get("finish_reason"),
            server_stats=stats,
        )
