"""Fitting a conversation into the model's context: whole turns dropped oldest first, never
the system prompt or the newest message, and the reply bounded by the room that is left."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Message = dict


@dataclass
class Fitted:
    ids: list[int]  # the prompt the model reads
    max_tokens: int  # what the reply may take: the request, or the room left if less
    dropped_turns: int  # earlier messages that no longer fit
    cut_to: int | None  # tokens kept of a newest message too long on its own, else None


def fit(messages: Sequence[Message], encode: Callable[[Sequence[Message]], list[int]], context: int,
        max_tokens: int) -> Fitted:
    """`encode` turns messages into prompt ids (the chat template). The prompt keeps at most
    the context less room for the reply: the smaller of `max_tokens` and a quarter of it.
    A reply being continued stays with the message it answers: together they are the newest."""
    reserve = max(1, min(max_tokens, context // 4))
    system = [m for m in messages[:1] if m.get("role") == "system"]
    rest = list(messages[len(system):])
    newest = 2 if len(rest) > 1 and rest[-1].get("role") == "assistant" else 1
    dropped = 0
    ids = encode([*system, *rest])
    while len(ids) > context - reserve and len(rest) > newest:
        rest.pop(0)
        dropped += 1
        if rest and rest[0].get("role") == "assistant":  # a turn starts with the user's message
            rest.pop(0)
            dropped += 1
        ids = encode([*system, *rest])
    cut_to = None
    if len(ids) > context - reserve:  # the newest message alone is too long: keep its end
        cut_to = context - reserve
        ids = ids[-cut_to:]
    return Fitted(ids, min(max_tokens, context - len(ids)), dropped, cut_to)
