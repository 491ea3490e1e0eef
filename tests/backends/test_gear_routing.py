"""Per-turn gear routing: gear-to-model proposals from server listings, and the router."""

import pytest

from gearterm.backends.gear_routing import GearRouter, gear_of, parse_variant, propose_gear_models
from gearterm.backends.gearbox import GearMode
from gearterm.backends.topk_entropy import EntropyBounds
from gearterm.kernels.gear import Gear

OLLAMA_TAGS = [
    "llama3.1:8b-instruct-q4_0",
    "llama3.1:8b-instruct-q4_K_M",
    "llama3.1:8b-instruct-q8_0",
    "llama3.1:8b-instruct-fp16",
    "llama3.1:8b",
    "qwen2.5:7b-instruct-q4_K_M",
    "qwen2.5:7b-instruct-q8_0",
]


@pytest.mark.parametrize(
    ("name", "family", "quant", "bits"),
    [
        ("llama3.1:8b-instruct-q4_K_M", "llama3.1:8b-instruct", "q4_K_M", 4),
        ("llama3.1:8b-instruct-fp16", "llama3.1:8b-instruct", "fp16", 16),
        ("qwen3:8b-bf16", "qwen3:8b", "bf16", 16),
        ("stories260K-f32.gguf", "stories260K.gguf", "f32", 32),
        ("Meta-Llama-3-8B-Instruct-Q8_0.gguf", "Meta-Llama-3-8B-Instruct.gguf", "Q8_0", 8),
        ("mistral:7b-iq3_xxs", "mistral:7b", "iq3_xxs", 3),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct", "AWQ", 4),
        ("org/model-FP8", "org/model", "FP8", 8),
    ],
)
def test_parse_variant(name, family, quant, bits):
    v = parse_variant(name)
    assert (v.family, v.quantization, v.bits) == (family, quant, bits)


@pytest.mark.parametrize("name", ["llama3.1:8b", "qwen2.5:7b", "gemma3:4b-it-qat", "gpt-4o"])
def test_names_without_a_quantization_suffix(name):
    assert parse_variant(name) is None


def test_proposal_maps_siblings_by_bits():
    m = propose_gear_models("llama3.1:8b-instruct-q8_0", OLLAMA_TAGS)
    assert m == {
        Gear.LOW: "llama3.1:8b-instruct-q4_K_M",  # Ollama's default mix wins the tie with q4_0
        Gear.MID: "llama3.1:8b-instruct-q8_0",
        Gear.HIGH: "llama3.1:8b-instruct-fp16",
    }


def test_chosen_model_keeps_its_own_gear():
    m = propose_gear_models("llama3.1:8b-instruct-q4_0", OLLAMA_TAGS)
    assert m[Gear.LOW] == "llama3.1:8b-instruct-q4_0"
    assert gear_of("llama3.1:8b-instruct-q4_0", m) == Gear.LOW


def test_missing_bands_fall_back_to_the_safer_gear():
    m = propose_gear_models("qwen2.5:7b-instruct-q4_K_M", OLLAMA_TAGS)
    assert m == {
        Gear.LOW: "qwen2.5:7b-instruct-q4_K_M",
        Gear.MID: "qwen2.5:7b-instruct-q8_0",
        Gear.HIGH: "qwen2.5:7b-instruct-q8_0",  # no 16-bit variant: the most precise one there is
    }
    only_ends = propose_gear_models("m-q4_0", ["m-q4_0", "m-f16"])
    assert only_ends[Gear.MID] == "m-f16"


def test_a_lone_model_serves_every_gear():
    assert set(propose_gear_models("llama3.1:8b", OLLAMA_TAGS).values()) == {"llama3.1:8b"}
    assert set(propose_gear_models("x-q4_0", ["x-q4_0", "y-q8_0"]).values()) == {"x-q4_0"}


def bounds(lower, upper=None):
    return EntropyBounds(lower_bits=lower, upper_bits=upper, missing_mass=0.1, listed=20)


MAPPING = {Gear.LOW: "m-q4_K_M", Gear.MID: "m-q8_0", Gear.HIGH: "m-f16"}


def test_router_turns_low_entropy_into_a_low_gear_turn():
    router = GearRouter(MAPPING, Gear.MID, vocab_size=32768)
    assert router.begin_turn(GearMode.AUTO) == (Gear.MID, "m-q8_0")
    for _ in range(40):
        router.observe(bounds(0.2))
    assert router.begin_turn(GearMode.AUTO) == (Gear.LOW, "m-q4_K_M")
    for _ in range(40):
        router.observe(bounds(6.0))
    assert router.begin_turn(GearMode.AUTO) == (Gear.HIGH, "m-f16")


def test_router_window_spans_turns_not_three_tokens():
    router = GearRouter(MAPPING, Gear.HIGH, vocab_size=32768, window_tokens=32)
    for _ in range(30):
        router.observe(bounds(0.2))
    for _ in range(3):  # a few high-entropy tokens at the end of a reply
        router.observe(bounds(5.0))
    assert router.next_gear == Gear.LOW


def test_router_can_run_on_the_upper_bound():
    router = GearRouter(MAPPING, Gear.MID, vocab_size=32768, entropy_source="upper")
    for _ in range(40):
        router.observe(bounds(0.2, upper=6.0))
    assert router.next_gear == Gear.HIGH
    with pytest.raises(ValueError, match="vocabulary size"):
        GearRouter(MAPPING, Gear.MID, vocab_size=None, entropy_source="upper")


def test_forced_mode_and_reset():
    router = GearRouter(MAPPING, Gear.MID, vocab_size=None)
    assert router.begin_turn(GearMode.HIGH) == (Gear.HIGH, "m-f16")
    router.begin_turn(GearMode.AUTO)
    for _ in range(40):
        router.observe(bounds(0.1))
    assert router.next_gear == Gear.LOW
    router.reset()
    assert router.begin_turn(GearMode.AUTO) == (Gear.MID, "m-q8_0")
