"""How a reply is drawn: cut into segments while it streams, by its text alone and never inside a
code fence; its line breaks kept."""

import random

from gearterm.app.chat_entries import SEGMENT_CHARS, ReplyEntry
from gearterm.kernels.gear import Gear

WORDS = ["alpha", "beta", "gamma\n\n", "delta", "```\ncode\n\nmore code\n```\n\n", "epsilon\n", "zeta"]


def _tokens(n: int, seed: int = 0) -> list[tuple[str, Gear]]:
    rng = random.Random(seed)
    return [(" " + rng.choice(WORDS), rng.choice(list(Gear))) for _ in range(n)]


def _stream(tokens, batch_sizes) -> ReplyEntry:
    reply = ReplyEntry.new("heading")
    i = 0
    for size in batch_sizes:
        reply.append(tokens[i : i + size])
        i += size
    reply.append(tokens[i:])
    return reply


def test_segments_do_not_depend_on_how_tokens_were_batched():
    tokens = _tokens(800)
    one_by_one = _stream(tokens, [1] * 800)
    in_chunks = _stream(tokens, [37, 5, 120, 1, 64] * 10)
    assert [s.text for s in one_by_one.segments] == [s.text for s in in_chunks.segments]
    assert len(one_by_one.segments) > 3
    assert one_by_one.text == "".join(t for t, _ in tokens)


def test_segments_close_on_blank_lines_outside_code_fences_and_finish_merges_them():
    reply = _stream(_tokens(800, seed=1), [3] * 200)
    for closed in reply.segments[:-1]:
        assert len(closed.text) >= SEGMENT_CHARS
        assert closed.text.count("```") % 2 == 0  # a fence never spans two segments
    text = reply.text
    reply.finish("800 tokens · stop")
    assert [s.text for s in reply.segments] == [text] and reply.meta == "800 tokens · stop"
    assert len(reply.segments[0].pieces) == 800


def test_a_reply_keeps_its_line_breaks_where_markdown_would_join_the_lines():
    """A poem's lines stay lines (CommonMark would make one paragraph of them); Markdown still works."""
    from rich.console import Console

    poem = "In the depths of the sea,\nA tapestry of wonder,\n\n- a list\n- **bold** item"
    reply = ReplyEntry.new("heading", poem)
    reply.finish("5 tokens · stop")
    lines = [strip.text.rstrip() for strip in reply.lines(60, False, Console(width=60))]
    assert lines[1:3] == ["In the depths of the sea,", "A tapestry of wonder,"]
    assert lines[4:6] == [" • a list", " • bold item"]
