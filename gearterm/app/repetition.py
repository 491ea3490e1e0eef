"""A reply that ends going round in a loop ("a fleeting sight, a fleeting sight, ..." until the
token limit): greedy decoding (temperature 0) on a small model often does. The app says so, and
what would help, rather than leaving a wall of repeats unexplained."""

from __future__ import annotations

REPEATS = 4  # times a piece must come round, the last one possibly cut short by the token limit
LONGEST_PIECE = 200  # characters
SHORTEST_LOOP = 64  # characters of repeats, so that a rule ("----") or a row of dots is no loop


def repeating_piece(text: str) -> str | None:
    """The shortest piece the end of `text` repeats REPEATS times (over at least SHORTEST_LOOP
    characters), from a word's start where it has one; None where the end does not loop."""
    for period in range(1, LONGEST_PIECE + 1):
        size = max(period * REPEATS, SHORTEST_LOOP)
        if len(text) < size:
            return None
        tail = text[-size:]
        if tail[period:] == tail[:-period] and tail.strip():
            piece = tail[:period]
            starts = [i for i in range(period) if piece[i - 1].isspace() and not piece[i].isspace()]
            return piece[starts[0] :] + piece[: starts[0]] if starts else piece
    return None
