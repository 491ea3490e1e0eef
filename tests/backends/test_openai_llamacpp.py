"""The OpenAI-compatible backend against a real llama.cpp server (xllamacpp) on stories260K,
compared token by token with the Transformers backend on the same weights."""

import asyncio

import pytest

from gearterm.app.app import _context_label
from gearterm.backends.base import GenerationParams, Notice, TokenEvent
from gearterm.backends.gearbox import GearMode
from gearterm.backends.openai_compat import OpenAIBackend
from conftest import STORIES_GGUF

STORY = [{"role": "user", "content": "Once upon a time"}]
TOKENS = 100
# Agreement of llama.cpp (f32 attention and KV cache) with Transformers, in bits. PROVENANCE.md
# measured top-logprob differences of 1.4e-5 nats in this set-up; this leaves room for the sum.
TOLERANCE_BITS = 1e-3


async def reply(backend, messages=STORY, max_tokens=TOKENS, **params):
    return [e async for e in backend.stream(messages, GenerationParams(max_tokens=max_tokens, **params))]


def tokens(events):
    return [e for e in events if isinstance(e, TokenEvent) and e.token_id is not None]


@pytest.fixture(scope="module")
def server_backend(llama_server):
    backend = OpenAIBackend(str(STORIES_GGUF), llama_server)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def hf_reference(stories_backend):
    """Greedy tokens and exact entropies from the Transformers backend at full precision."""
    events = list(stories_backend.generate(STORY, GenerationParams(max_tokens=TOKENS, gear_mode=GearMode.HIGH)))
    return tokens(events)


def test_with_no_model_named_the_one_model_the_server_serves_is_used(llama_server, server_backend):
    """llama.cpp's server serves the model it was started with: naming it again is not needed."""
    backend = OpenAIBackend("", llama_server)
    backend.load()
    assert backend.model_name == server_backend.model_name == str(STORIES_GGUF)
    assert backend.max_positions == 512 and backend.vocab_size == server_backend.vocab_size


def test_server_reports_the_vocabulary(server_backend):
    caps = server_backend.capabilities
    assert caps.vocab_size == 512 and caps.entropy == "topk" and caps.gears == "per_turn"


def test_greedy_text_matches_transformers(server_backend, hf_reference):
    served = tokens(asyncio.run(reply(server_backend)))
    assert len(served) == len(hf_reference) == TOKENS
    assert [t.token_id for t in served] == [t.token_id for t in hf_reference]
    assert "".join(t.text for t in served).strip() == "".join(t.text for t in hf_reference).strip()


def test_exact_entropy_lies_within_the_top_k_bounds(server_backend, hf_reference):
    served = tokens(asyncio.run(reply(server_backend)))
    assert all(t.entropy_bits_lower is not None and t.entropy_bits_upper is not None for t in served)
    below = [ref.entropy_bits - t.entropy_bits_lower for t, ref in zip(served, hf_reference)]
    above = [t.entropy_bits_upper - ref.entropy_bits for t, ref in zip(served, hf_reference)]
    assert min(below) >= -TOLERANCE_BITS, f"H_lb above the exact entropy by {-min(below):.2e} bits"
    assert min(above) >= -TOLERANCE_BITS, f"H_ub below the exact entropy by {-min(above):.2e} bits"
    # The bounds say something: the top 20 of 512 leave a small missing mass on this model.
    assert max(t.missing_mass for t in served) < 0.5
    assert all(t.entropy_source == "lower" and t.entropy_bits is None for t in served)


def test_whole_vocabulary_gives_the_exact_entropy(llama_server, hf_reference):
    """Asking for all 512 logprobs (llama.cpp does not cap it) closes the bounds on the exact value."""
    backend = OpenAIBackend(str(STORIES_GGUF), llama_server, top_logprobs=512)
    backend.load()
    served = tokens(asyncio.run(reply(backend, max_tokens=30)))
    for t, ref in zip(served, hf_reference):
        assert t.entropy_bits == pytest.approx(ref.entropy_bits, abs=TOLERANCE_BITS)
        assert t.entropy_bits_upper == t.entropy_bits_lower


def test_second_turn_with_history(server_backend):
    first = asyncio.run(reply(server_backend, max_tokens=8))
    history = [*STORY, {"role": "assistant", "content": "".join(t.text for t in tokens(first))}]
    history.append({"role": "user", "content": " The dog"})
    second = asyncio.run(reply(server_backend, history, max_tokens=8))
    assert second[-1].reason == "length" and len(tokens(second)) == 8


def test_a_continued_reply_goes_on_from_its_text(server_backend):
    """llama.cpp goes on with a trailing assistant message and streams only the new text: a reply
    of 8 tokens continued by 8 more reads as the reply of 16 (greedy, same weights)."""
    first = asyncio.run(reply(server_backend, max_tokens=8))
    text = "".join(t.text for t in tokens(first))
    more = asyncio.run(reply(server_backend, [*STORY, {"role": "assistant", "content": text}], max_tokens=8))
    once = asyncio.run(reply(server_backend, max_tokens=16))
    assert more[-1].reason == "length" and len(tokens(more)) == 8
    assert text + "".join(t.text for t in tokens(more)) == "".join(t.text for t in tokens(once))
    assert not [e for e in more if isinstance(e, Notice)]  # the server says it is llama.cpp: nothing to warn of


def test_the_server_says_its_context_and_each_reply_the_positions_it_fills(server_backend):
    """llama.cpp's /props gives the context it was started with (512 in conftest); a reply's
    usage counts its prompt and its tokens, so the next turn's prompt holds the first turn."""
    assert server_backend.max_positions == 512
    first = asyncio.run(reply(server_backend, max_tokens=8))[-1]
    history = [*STORY, {"role": "assistant", "content": "x"}, {"role": "user", "content": " The dog"}]
    second = asyncio.run(reply(server_backend, history, max_tokens=8))[-1]
    assert first.tokens == second.tokens == 8
    assert first.positions > first.tokens  # the prompt is counted too
    assert second.positions - second.tokens > first.positions - first.tokens  # a longer prompt
    assert _context_label(server_backend, 0, first.positions) == f"{first.positions} of 512 used"


def test_a_server_that_does_not_say_its_context_is_shown_as_such():
    unknown = OpenAIBackend("any", "http://127.0.0.1:9")  # not loaded: nothing was said
    assert _context_label(unknown, 0, None) == "n/a — the server's own"
    assert _context_label(unknown, 0, 40) == "40 used (size n/a: the server's own)"


def test_a_conversation_near_the_servers_context_is_told_once_and_one_past_it_is_refused(server_backend):
    """The real server's 512 positions: a prompt of 92 "Once upon a time," (5 tokens each, 462 with
    the template) and 8 reply tokens fill 470 of them, past 90%; 110 of them do not fit at all."""
    def near(n):
        return asyncio.run(reply(server_backend, [{"role": "user", "content": "Once upon a time, " * n}], max_tokens=8))

    first = near(92)
    said = [e.text for e in first if isinstance(e, Notice)]
    assert first[-1].positions == 470 and len(said) == 1
    assert said[0].startswith("this conversation fills 470 of the 512 positions") and "llama.cpp refuses" in said[0]
    refused = near(110)[-1]
    assert refused.reason == "error" and "exceeds the available context size (512 tokens)" in refused.error
