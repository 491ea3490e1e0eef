"""Train gearterm's pocket model from scratch: a small Llama on public-domain books.

The pocket model ships inside the package so that gearterm has a real trained model to
chat with (and real entropy for the gears to react to) on a machine with nothing else.
Everything here is deterministic from the seed: the data split, the tokenizer, the batches.

    python tools/train_pocket.py --data-dir ../shared/data --out /tmp/pocket --steps 2500 --dropout 0.3
    python tools/train_pocket.py --data-dir ../shared/data --write-held-out /tmp/held_out.txt

Text is handled as paragraphs (blocks between blank lines), each followed by </s>. Half the
training windows start with <s> at a paragraph start; the chat template writes each message
the same way, so the model answers a conversation with a new paragraph and stops with </s>.
The last 2% of every file is held out (never trained on, never used to pick a checkpoint);
the 1% before it is the validation split that picks the checkpoint.
"""

import argparse
import hashlib
import json
import math
import platform
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# Run as a script from a checkout: reuse the app's own entropy so the card's figures match it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gearterm.kernels.entropy import entropy_varentropy  # noqa: E402

TRAIN_END = 0.97  # fraction of each file's characters: paragraphs starting before it train
VALIDATION_END = 0.98  # ... then validation up to here; the rest (last 2%) is held out

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 as in Llama
BOS, EOS = 1, 2

# Each message becomes a paragraph ending in </s>; the model continues with its own paragraph.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ message['content'] | trim }}{{ eos_token }}"
    "{% endfor %}"
)

LICENSES = {
    "nltk-gutenberg": "public-domain works (Project Gutenberg e-texts via NLTK's corpus; nltk repository Apache-2.0)",
    "tinyshakespeare": "public domain (Shakespeare; assembled by Andrej Karpathy in char-rnn, repository MIT)",
}

SAMPLE_PROMPTS = [
    ("greedy", "What did you see upon the sea?"),
    ("sampled", "Tell me of the king and his daughter."),
    ("sampled", "Where is my lord Hamlet?"),
]


def source_files(data_dir: Path) -> list[Path]:
    """The 15 NLTK Gutenberg books and Tiny Shakespeare, in a fixed order."""
    books = sorted((data_dir / "nltk-gutenberg").glob("*.txt"))
    shakespeare = data_dir / "tinyshakespeare" / "input.txt"
    if not books or not shakespeare.is_file():
        raise SystemExit(
            f"no training text under {data_dir}: expected nltk-gutenberg/*.txt and "
            "tinyshakespeare/input.txt (see ../shared/README.md); pass --data-dir"
        )
    return books + [shakespeare]


def paragraphs(text: str) -> list[str]:
    """Blocks between blank lines; leading indentation is kept (verse)."""
    return [b.strip("\n").rstrip() for b in re.split(r"\n(?:[ \t]*\n)+", text) if b.strip()]


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Two of the NLTK books carry a few Latin-1 letters (Caesar's "æ", an "è" in Chesterton).
        text = raw.decode("latin-1")
    # Moby Dick has CRLF line ends and Paradise Lost ends in DOS end-of-file marks.
    return text.replace("\r\n", "\n").replace("\x1a", "")


def split_file(path: Path) -> dict[str, list[str]]:
    """First 97% of the characters train, the next 1% validate, the last 2% are held out.

    Each cut moves forward to the next line start, so no line is split between two parts.
    """
    text = read_text(path)
    cuts = []
    for fraction in (TRAIN_END, VALIDATION_END):
        newline = text.find("\n", int(len(text) * fraction))
        cuts.append(len(text) if newline < 0 else newline + 1)
    pieces = (text[: cuts[0]], text[cuts[0] : cuts[1]], text[cuts[1] :])
    return {name: paragraphs(piece) for name, piece in zip(("train", "validation", "held_out"), pieces)}


def held_out_text(data_dir: Path) -> str:
    """The held-out paragraphs of every file, in file order, separated by blank lines."""
    paragraphs = [p for f in source_files(data_dir) for p in split_file(f)["held_out"]]
    return "\n\n".join(paragraphs) + "\n"


def train_tokenizer(paragraphs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(paragraphs, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A </s> $B", special_tokens=[("<s>", BOS), ("</s>", EOS)]
    )
    return tokenizer


def encode_stream(tokenizer, paragraphs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All paragraphs as one token stream, each followed by </s>; and where each paragraph starts."""
    ids, starts = [], []
    for encoding in tokenizer.encode_batch(paragraphs, add_special_tokens=False):
        starts.append(len(ids))
        ids.extend(encoding.ids)
        ids.append(EOS)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


def pocket_config(vocab_size: int, context: int):
    from transformers import LlamaConfig

    # In-features of every projection (256, 640) are multiples of 128: the gear format's group.
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=640,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=32,
        max_position_embeddings=context,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=None,
        attention_dropout=0.0,
    )


def add_residual_dropout(model, p: float) -> None:
    """Dropout on each attention and MLP output before it joins the residual stream.

    The books are a few million tokens, so a model this size sees them many times over and
    memorises them without it. Hooks are active in train mode only and nothing is saved.
    """

    def drop(module, args, output):
        return F.dropout(output, p, module.training)

    for layer in model.model.layers:
        layer.self_attn.o_proj.register_forward_hook(drop)
        layer.mlp.down_proj.register_forward_hook(drop)


def sample_batch(stream, starts, batch, context, generator):
    """Inputs and next-token targets, `context` tokens each.

    Half the windows are <s> then text from a random paragraph start, as a prompt looks; half
    are crops from anywhere without <s>, so that the insides of long paragraphs are learnt too
    (each book of Paradise Lost is one paragraph of about 40,000 characters).
    """
    half = batch // 2
    device = stream.device
    at_paragraph = starts[torch.randint(len(starts), (half,), generator=generator)].to(device)
    anywhere = torch.randint(len(stream) - context, (batch - half,), generator=generator).to(device)
    prompt_like = torch.cat(
        [torch.full((half, 1), BOS, device=device), stream[at_paragraph[:, None] + torch.arange(context, device=device)]],
        dim=1,
    )
    crops = stream[anywhere[:, None] + torch.arange(context + 1, device=device)]
    seq = torch.cat([prompt_like, crops])
    return seq[:, :-1], seq[:, 1:]


@torch.no_grad()
def evaluate(model, stream, context, device, batch=32, entropies=False):
    """Mean loss (nats) over every token of <s> + `stream`; optionally each token's entropy (bits).

    Windows of `context` tokens overlap by half and each scores only the tokens no earlier window
    reached, so every token after the first window has at least context/2 tokens before it.
    """
    model.eval()
    seq = torch.cat([torch.tensor([BOS]), stream.cpu()])
    targets = len(seq) - 1
    length = min(context, targets)
    last = targets - length
    windows, scored = [], 0  # scored: seq positions 1..scored already have a loss
    for start in [*range(0, last, context // 2), last]:
        windows.append((start, scored - start if scored > start else 0))
        scored = start + length
    nll, count, bits = 0.0, 0, []
    for i in range(0, len(windows), batch):
        group = windows[i : i + batch]
        idx = torch.tensor([s for s, _ in group])[:, None] + torch.arange(length + 1)
        x, y = seq[idx][:, :-1].to(device), seq[idx][:, 1:].to(device)
        keep = (torch.arange(length)[None, :] >= torch.tensor([o for _, o in group])[:, None]).to(device)
        with autocast(device):
            logits = model(input_ids=x, use_cache=False).logits.float()
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        nll += losses[keep].sum().item()
        count += int(keep.sum())
        if entropies:
            bits.append(entropy_varentropy(logits)[0][keep].cpu())
    model.train()
    return nll / count, count, (torch.cat(bits) if entropies else None)


def autocast(device: torch.device):
    # bf16 on CUDA; CPU stays in float32 (bf16 matmuls there are slow and not what users run).
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate_samples(model_dir: Path, device: torch.device, seed: int) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    samples = []
    for i, (mode, prompt) in enumerate(SAMPLE_PROMPTS):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
        torch.manual_seed(seed + i)
        sampling = {"do_sample": True, "temperature": 0.8, "top_p": 0.95} if mode == "sampled" else {}
        with torch.no_grad(), autocast(device):
            out = model.generate(ids, max_new_tokens=60, eos_token_id=EOS, pad_token_id=EOS, **sampling)
        reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        samples.append({"mode": mode, **sampling, "prompt": prompt, "reply": reply})
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, help="model directory to write")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--metrics", type=Path, help="also write the run's figures as JSON here")
    parser.add_argument("--write-held-out", type=Path, metavar="FILE", help="write the held-out text and exit")
    args = parser.parse_args(argv)

    if args.write_held_out:
        args.write_held_out.write_text(held_out_text(args.data_dir), encoding="utf-8")
        print(f"held-out text written to {args.write_held_out}")
        return 0
    if args.out is None:
        parser.error("--out is required to train")

    from transformers import GenerationConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    command = "python " + " ".join([f"tools/{Path(__file__).name}", *(argv if argv is not None else sys.argv[1:])])
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    files = source_files(args.data_dir)
    splits = {f: split_file(f) for f in files}
    part = {name: [p for f in files for p in splits[f][name]] for name in ("train", "validation", "held_out")}

    t0 = time.perf_counter()
    tokenizer = train_tokenizer(part["train"], args.vocab_size)
    train_stream, train_starts = encode_stream(tokenizer, part["train"])
    validation_stream, _ = encode_stream(tokenizer, part["validation"])
    held_out_stream, _ = encode_stream(tokenizer, part["held_out"])
    train_starts = train_starts[train_starts + args.context <= len(train_stream)]
    print(
        f"tokenizer {tokenizer.get_vocab_size()} pieces in {time.perf_counter() - t0:.1f} s; tokens "
        f"train {len(train_stream):,} validation {len(validation_stream):,} held-out {len(held_out_stream):,}",
        flush=True,
    )

    config = pocket_config(tokenizer.get_vocab_size(), args.context)
    model = LlamaForCausalLM(config).to(device)
    add_residual_dropout(model, args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters on {device}", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        fused=device.type == "cuda",
    )
    train_stream = train_stream.to(device)
    generator = torch.Generator().manual_seed(args.seed)

    curve, evals = [], []
    best = (math.inf, 0, None)
    running = torch.zeros((), device=device)
    model.train()
    t_train = time.perf_counter()
    t_log = t_train
    for step in range(1, args.steps + 1):
        lr = learning_rate(step, args.steps, args.lr, args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = sample_batch(train_stream, train_starts, args.batch_size, args.context, generator)
        with autocast(device):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.detach()

        if step % args.log_every == 0 or step == args.steps:
            n = step - (curve[-1]["step"] if curve else 0)
            train_loss = running.item() / n
            running.zero_()
            now = time.perf_counter()
            tokens_per_s = n * args.batch_size * args.context / (now - t_log)
            t_log = now
            curve.append({"step": step, "train_loss": round(train_loss, 4)})
            print(
                f"step {step:5d}  loss {train_loss:.4f}  lr {lr:.2e}  {tokens_per_s:,.0f} tok/s  "
                f"{now - t_train:.0f} s",
                flush=True,
            )
        if step % args.eval_every == 0 or step == args.steps:
            val_loss, _, _ = evaluate(model, validation_stream, args.context, device)
            evals.append({"step": step, "validation_loss": round(val_loss, 4)})
            print(f"step {step:5d}  validation loss {val_loss:.4f}  ppl {math.exp(val_loss):.2f}", flush=True)
            if val_loss < best[0]:
                best = (val_loss, step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
            t_log = time.perf_counter()  # tokens/s counts training steps only
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - t_train
    print(f"trained {args.steps} steps in {train_seconds:.0f} s; best validation loss {best[0]:.4f} at step {best[1]}")

    # Write the checkpoint with the lowest validation loss in 16 bits.
    model.load_state_dict(best[2])
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out)
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS, do_sample=False).save_pretrained(args.out)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=args.context,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(args.out)
    config_path = args.out / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    # transformers 5 writes its internal class name and the template to a file of its own;
    # the public class and the template inside tokenizer_config.json load in 4.x and 5.x alike.
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer_config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (args.out / "chat_template.jinja").unlink(missing_ok=True)
    (args.out / "model.safetensors").chmod(0o644)

    # Figures for the card come from the files just written, as a user would load them.
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(device)
    held_loss, held_tokens, bits = evaluate(saved, held_out_stream.to(device), args.context, device, entropies=True)
    held_chars = sum(len(p) + 1 for p in part["held_out"])  # +1: the paragraph break </s> stands for
    q = torch.quantile(bits, torch.tensor([0.1, 0.5, 0.9]))
    entropy = {
        "mean": round(bits.mean().item(), 3),
        "p10": round(q[0].item(), 3),
        "p50": round(q[1].item(), 3),
        "p90": round(q[2].item(), 3),
        "max": round(bits.max().item(), 3),
        "log2_vocab": round(math.log2(config.vocab_size), 3),
    }
    print(f"held-out: {held_tokens:,} tokens, loss {held_loss:.4f} nats/token, perplexity {math.exp(held_loss):.2f}")
    print(f"held-out next-token entropy (bits): {entropy}")
    samples = generate_samples(args.out, device, args.seed)
    for s in samples:
        print(f"[{s['mode']}] {s['prompt']!r} -> {s['reply']!r}")

    metrics = {
        "command": command,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "tokenizers": __import__("tokenizers").__version__},
        "parameters": n_params,
        "safetensors_bytes": (args.out / "model.safetensors").stat().st_size,
        "config": {k: getattr(config, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                   "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                   "max_position_embeddings", "tie_word_embeddings")},
        "training": {"steps": args.steps, "batch_size": args.batch_size, "context": args.context,
                     "lr": args.lr, "warmup": args.warmup, "dropout": args.dropout, "seed": args.seed,
                     "weight_decay": 0.1,
                     "tokens_seen": args.steps * args.batch_size * args.context,
                     "epochs": round(args.steps * args.batch_size * args.context / len(train_stream), 1),
                     "seconds": round(train_seconds, 1), "best_step": best[1]},
        "data": [{"file": f"{f.parent.name}/{f.name}", "sha256": sha256(f),
                  "license": LICENSES[f.parent.name],
                  **{name: sum(len(p) for p in splits[f][name]) for name in splits[f]}} for f in files],
        "tokens": {"train": len(train_stream), "validation": len(validation_stream), "held_out": len(held_out_stream)},
        "curve": curve,
        "evals": evals,
        "held_out": {"tokens": held_tokens, "characters": held_chars, "loss": round(held_loss, 4),
                     "perplexity": round(math.exp(held_loss), 2),
                     "bits_per_character": round(held_loss * held_tokens / held_chars / math.log(2), 3)},
        "entropy_bits": entropy,
        "samples": samples,
    }
    (args.out / "MODEL_CARD.md").write_text(model_card(metrics), encoding="utf-8")
    if args.metrics:
        args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def model_card(m: dict) -> str:
    c, t, h, e = m["config"], m["training"], m["held_out"], m["entropy_bits"]
    every = max(1, len(m["curve"]) // 12)
    val = {r["step"]: r["validation_loss"] for r in m["evals"]}
    rows = [r for r in m["curve"][::every]] + ([m["curve"][-1]] if (len(m["curve"]) - 1) % every else [])
    lines = [
        "# pocket — gearterm's built-in model",
        "",
        "A small Llama trained from scratch on public-domain books so that gearterm has a real model to",
        "chat with, and real next-token entropy for the gears to react to, on a machine with nothing else.",
        "**A toy for watching gears, not an assistant.**",
        "",
        "## Architecture and size",
        "",
        "| | |",
        "| --- | --- |",
        "| architecture | `LlamaForCausalLM` (RMSNorm, RoPE, SwiGLU, grouped-query attention) |",
        f"| layers / hidden / intermediate | {c['num_hidden_layers']} / {c['hidden_size']} / {c['intermediate_size']} |",
        f"| heads / KV heads / head dim | {c['num_attention_heads']} / {c['num_key_value_heads']} / {c['head_dim']} |",
        f"| vocabulary | {c['vocab_size']} (byte-level BPE, `tokenizers`, trained on the training split only) |",
        f"| context | {c['max_position_embeddings']} tokens |",
        f"| embeddings | tied with the LM head: {c['tie_word_embeddings']} |",
        f"| parameters | {m['parameters']:,} |",
        f"| model.safetensors | {m['safetensors_bytes']:,} bytes, bfloat16 |",
        "",
        "Every projection's input width (256 or 640) is a multiple of 128, the gear format's group size.",
        "",
        "**Prompt format.** Text is paragraphs, each followed by `</s>`. The chat template writes `<s>` and",
        "then every message's content as a paragraph ending in `</s>`; the model continues with a new",
        "paragraph and usually ends it with `</s>`. Roles are not marked: it continues text, it does not chat.",
        "",
        "## Data and licenses",
        "",
        "Each file is cut at line starts: the first 97% of its characters train, the next 1% is validation",
        "(picks the checkpoint), the last 2% is held out (used only for the figures below;",
        "`python tools/train_pocket.py --write-held-out FILE` writes it). Each part is then split into",
        "paragraphs at blank lines. Half of each training batch is `<s>` + text from a paragraph start,",
        "half is crops from anywhere.",
        "",
        "| file | license | train / validation / held-out chars | sha256 |",
        "| --- | --- | --- | --- |",
        *[
            f"| ../shared/data/{d['file']} | {d['license']} | {d['train']:,} / {d['validation']:,} / "
            f"{d['held_out']:,} | `{d['sha256'][:16]}…` |"
            for d in m["data"]
        ],
        "",
        f"Tokens: train {m['tokens']['train']:,}, validation {m['tokens']['validation']:,}, "
        f"held-out {m['tokens']['held_out']:,}. TinyStories is not used. Sources and checksums in full:",
        "the PROVENANCE.md files beside the data.",
        "",
        "## Training",
        "",
        "```",
        m["command"],
        "```",
        "",
        f"- hardware: {m['device']}; torch {m['versions']['torch']}, transformers "
        f"{m['versions']['transformers']}, tokenizers {m['versions']['tokenizers']}",
        f"- {t['steps']:,} steps of {t['batch_size']} windows x {t['context']} tokens "
        f"({t['tokens_seen']:,} tokens, {t['epochs']} passes over the training split) in {t['seconds']:.0f} s",
        f"- AdamW (betas 0.9, 0.95; weight decay {t['weight_decay']}), peak lr {t['lr']}, {t['warmup']} warm-up steps, "
        f"cosine to 10%; residual dropout {t['dropout']}; bf16 autocast; seed {t['seed']}",
        f"- saved checkpoint: step {t['best_step']:,}, the lowest validation loss",
        "",
        "| step | train loss (mean since previous row) | validation loss |",
        "| --- | --- | --- |",
        *[f"| {r['step']:,} | {r['train_loss']:.3f} | {val.get(r['step'], '')} |" for r in rows],
        "",
        "## Held-out figures (the saved 16-bit files, loaded with transformers)",
        "",
        f"- loss {h['loss']:.4f} nats/token, **perplexity {h['perplexity']:.2f}** over {h['tokens']:,} tokens "
        f"({h['bits_per_character']:.3f} bits per character)",
        f"- next-token entropy: mean {e['mean']:.2f} bits, p10 {e['p10']:.2f}, p50 {e['p50']:.2f}, "
        f"p90 {e['p90']:.2f}, max {e['max']:.2f} (log2 of the vocabulary: {e['log2_vocab']:.0f})",
        "",
        f"## Sample generations (the saved files on {m['device']}, chat template, 60 new tokens at most)",
        "",
        "Greedy output on another device or in another precision can part from these after a few tokens.",
        "",
    ]
    for s in m["samples"]:
        how = "greedy" if s["mode"] == "greedy" else f"sampled, temperature {s['temperature']}, top-p {s['top_p']}"
        lines += [f"**{s['prompt']}** ({how})", "", "> " + s["reply"].strip().replace("\n", "\n> "), ""]
    lines += [
        "## Limits",
        "",
        "A toy for watching gears, not an assistant. It has read a few million tokens of 16th-19th century",
        "English (the King James Bible is a third of it), knows nothing after that and nothing outside these",
        "books, does not follow instructions, repeats itself under greedy decoding, and invents freely.",
        "Its 512-token context is short. Use it to see entropy and gear shifts on a real distribution; use a",
        "real model for anything else.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
