"""Train gearterm's pocket model from scratch: a small Llama on public-domain books.

The pocket model ships inside the package so that gearterm has a real trained model to
chat with (and real entropy for the gears to react to) on a machine with nothing else.
Everything here is deterministic from the seed: the data split, the tokenizer, the batches.

    python tools/train_pocket.py --data-dir ../shared/data --out /tmp/pocket
    python tools/train_pocket.py --data-dir ../shared/data --write-held-out /tmp/held_out.txt

Text is handled as paragraphs (blocks between blank lines), each followed by </s>. Dialogue
found in the plays and novels is also written as chat turns, `<|user|>speech</s><|assistant|>reply</s>`,
the chat template's format, so that a reply answers the turn before it. The tokenizer normalizes
typographic punctuation (curly quotes, dashes, the ellipsis) to what a keyboard types.
The last 2% of every file is held out (never trained on, never used to pick a checkpoint), the 1%
before it is the validation split that picks the checkpoint; one book and TinyStories are never
trained on at all. The output directory gets the model, metrics.json and MODEL_CARD.md.
"""

import argparse
import hashlib
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# Run as a script from a checkout: reuse the app's own entropy so the card's figures match it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gearterm.kernels.entropy import entropy_varentropy  # noqa: E402

from pocket_card import model_card  # noqa: E402
from pocket_text import (  # noqa: E402
    ASSISTANT, BOS, CHAT_TEMPLATE, EOS, LICENSES, SPECIAL_TOKENS, USER, conversations, dialogues,
    held_out_text, normalizer, one_line, paragraphs, read_text, source_files, split_file, typeset, unseen_files,
)

CHAT_SHARE = 0.25  # of each batch's windows: chat turns; the dialogue is a sixth of the text and also in the prose
ROPE_THETA = 10000.0  # Llama's base at a 2,048 context: the slowest rotation still spans the window many times

# Two turns each: v1's second reply ignored the second question. The third types what a phone types.
SAMPLE_CHATS = [
    ("greedy", ["What did you see upon the sea?", "And what became of the ship?"]),
    ("sampled", ["Tell me of the king and his daughter.", "Why does she weep?"]),
    ("sampled", ["Where\u2019s my lord Hamlet?", "Go, bid him come to me \u2014 now\u2026"]),
]
SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.95}
REPLY_TOKENS = 80


def train_tokenizer(paras: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer()  # applied to the training text and to every later encode
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(paras, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A </s> $B", special_tokens=[("<s>", BOS), ("</s>", EOS)]
    )
    return tokenizer


def without_normalizer(tokenizer):
    """The same vocabulary and merges reading text as it comes, as v1's tokenizer did."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_str(tokenizer.to_str())
    raw.normalizer = None
    return raw


def encode_prose(tokenizer, paras: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All paragraphs as one token stream, each followed by </s>; and where each paragraph starts."""
    ids, starts = [], []
    for encoding in tokenizer.encode_batch(paras, add_special_tokens=False):
        starts.append(len(ids))
        ids.extend(encoding.ids)
        ids.append(EOS)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


def encode_chats(tokenizer, chats: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Conversations as the chat template writes them, one after another; and where each starts.

    Speeches alternate user, assistant, user...: `<s><|user|>a</s><|assistant|>b</s>...`.
    """
    turns = tokenizer.encode_batch([t for chat in chats for t in chat], add_special_tokens=False)
    ids, starts, i = [], [], 0
    for chat in chats:
        starts.append(len(ids))
        ids.append(BOS)
        for k in range(len(chat)):
            ids += [USER if k % 2 == 0 else ASSISTANT, *turns[i].ids, EOS]
            i += 1
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
        rope_parameters={"rope_theta": ROPE_THETA, "rope_type": "default"},
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


def sample_batch(prose, chat, batch, context, generator):
    """Inputs and next-token targets, `context` tokens each.

    A quarter of the windows start at a conversation's <s> in the chat stream. Of the rest, half
    are <s> then text from a random paragraph start, as a prompt looks, and half are crops from
    anywhere without <s>, so that the insides of long paragraphs are learnt too (each book of
    Paradise Lost is one paragraph of about 40,000 characters).
    """
    (prose, prose_starts), (chat, chat_starts) = prose, chat
    device = prose.device
    span = torch.arange(context + 1, device=device)
    n_chat = round(batch * CHAT_SHARE)
    n_prompt = (batch - n_chat) // 2
    n_crop = batch - n_chat - n_prompt
    at_chat = chat_starts[torch.randint(len(chat_starts), (n_chat,), generator=generator)].to(device)
    at_paragraph = prose_starts[torch.randint(len(prose_starts), (n_prompt,), generator=generator)].to(device)
    anywhere = torch.randint(len(prose) - context, (n_crop,), generator=generator).to(device)
    seq = torch.cat([
        chat[at_chat[:, None] + span],
        torch.cat([torch.full((n_prompt, 1), BOS, device=device), prose[at_paragraph[:, None] + span[:-1]]], dim=1),
        prose[anywhere[:, None] + span],
    ])
    return seq[:, :-1], seq[:, 1:]


@torch.no_grad()
def evaluate(model, seq, context, device, batch=16, entropies=False):
    """Total loss (nats) and token count over `seq` (which starts with <s>); optionally each token's
    entropy (bits).

    Windows of `context` tokens overlap by half and each scores only the tokens no earlier window
    reached, so every token after the first window has at least context/2 tokens before it.
    """
    model.eval()
    seq = seq.cpu()
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
    return nll, count, (torch.cat(bits) if entropies else None)


def with_bos(stream: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.tensor([BOS]), stream.cpu()])


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


def cap(items: list, chars: int | None) -> list:
    """The first items (paragraphs, or conversations of speeches) up to `chars` characters; all without."""
    if chars is None:
        return items
    kept, total = [], 0
    for item in items:
        if total >= chars:
            break
        kept.append(item)
        total += len(item) + 1 if isinstance(item, str) else sum(len(t) + 1 for t in item)
    return kept


def perplexity_table(model, tokenizer, texts: dict[str, list[str]], context, device) -> dict:
    """Each text's perplexity as in its file and typeset (curly quotes, dashes, ellipses), each
    through the tokenizer with its normalizer (as the app reads a prompt) and without.

    Bits per character count the file's characters (and one per paragraph break) in all four, so
    they compare the same words however they were written and tokenized.
    """
    readers = {"normalized": tokenizer, "raw": without_normalizer(tokenizer)}
    table, scored = {}, {}
    for name, paras in texts.items():
        chars = sum(len(p) + 1 for p in paras)
        row = {"characters": chars}
        for form, text in (("file", paras), ("typeset", [typeset(p) for p in paras])):
            for how, reader in readers.items():
                ids, _ = encode_prose(reader, text)
                key = hash(tuple(ids.tolist()))
                if key not in scored:  # ASCII text reads the same with the normalizer and without
                    scored[key] = evaluate(model, with_bos(ids), context, device)[:2]
                nll, tokens = scored[key]
                row[f"{form}_{how}"] = {
                    "tokens": tokens,
                    "loss": round(nll / tokens, 4),
                    "perplexity": round(math.exp(nll / tokens), 2),
                    "bits_per_character": round(nll / chars / math.log(2), 3),
                }
        table[name] = row
        print(f"  {name}: " + "  ".join(f"{k} {v['perplexity']:.2f}" for k, v in row.items() if k != "characters"),
              flush=True)
    return table


def sample_chats(model_dir: Path, device: torch.device, seed: int) -> list[dict]:
    """Two-turn chats through the saved files' chat template: each reply answers its turn."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_kernels=False).to(device).eval()
    chats = []
    for i, (mode, prompts) in enumerate(SAMPLE_CHATS):
        messages = []
        for turn, prompt in enumerate(prompts):
            messages.append({"role": "user", "content": prompt})
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            ids = ids["input_ids"].to(device)
            torch.manual_seed(seed + 10 * i + turn)
            sampling = SAMPLING if mode == "sampled" else {}
            with torch.no_grad(), autocast(device):
                out = model.generate(ids, max_new_tokens=REPLY_TOKENS, eos_token_id=EOS, pad_token_id=EOS, **sampling)
            reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            messages.append({"role": "assistant", "content": reply})
        chats.append({"mode": mode, **sampling, "max_new_tokens": REPLY_TOKENS, "messages": messages})
    return chats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, help="directory to write the model, metrics.json and MODEL_CARD.md to")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-chars", type=int, help="score only this many characters of each evaluation text (quick runs)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (about a minute to compile)")
    parser.add_argument("--write-held-out", type=Path, metavar="FILE", help="write the held-out text and exit")
    args = parser.parse_args(argv)

    if args.write_held_out:
        args.write_held_out.write_text(held_out_text(args.data_dir), encoding="utf-8")
        print(f"held-out text written to {args.write_held_out}")
        return 0
    if args.out is None:
        parser.error("--out is required to train")

    from transformers import GenerationConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    t_start = time.perf_counter()
    command = "python " + " ".join([f"tools/{Path(__file__).name}", *(argv if argv is not None else sys.argv[1:])])
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    files = source_files(args.data_dir)
    unseen = unseen_files(args.data_dir)
    splits = {f: split_file(f) for f in files}
    part = {name: [p for f in files for p in splits[f][name]] for name in ("train", "validation", "held_out")}
    rng = random.Random(args.seed)
    chats = {name: conversations([r for f in files for r in dialogues(f, splits[f][name])], rng)
             for name in ("train", "validation", "held_out")}

    tokenizer = train_tokenizer(part["train"], args.vocab_size)
    prose = {name: encode_prose(tokenizer, part[name]) for name in part}
    chat = {name: encode_chats(tokenizer, chats[name]) for name in chats}
    windows_fit = prose["train"][1] + args.context <= len(prose["train"][0])
    train_prose = (prose["train"][0], prose["train"][1][windows_fit])
    chat_fit = chat["train"][1] + args.context + 1 <= len(chat["train"][0])
    train_chat = (chat["train"][0], chat["train"][1][chat_fit])
    tokens = {f"{kind}_{name}": len(streams[name][0]) for kind, streams in (("prose", prose), ("chat", chat))
              for name in streams}
    print(
        f"tokenizer {tokenizer.get_vocab_size()} pieces, text read and encoded in {time.perf_counter() - t_start:.1f} s; "
        f"tokens: " + ", ".join(f"{k} {v:,}" for k, v in tokens.items())
        + f"; conversations: train {len(chats['train']):,}",
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
    forward = torch.compile(model) if args.compile else model
    train_prose = (train_prose[0].to(device), train_prose[1])  # starts stay with the CPU generator
    train_chat = (train_chat[0].to(device), train_chat[1])
    validation = [with_bos(prose["validation"][0]), chat["validation"][0]]
    generator = torch.Generator().manual_seed(args.seed)

    def validation_loss():
        nll, count = (sum(x) for x in zip(*(evaluate(model, seq, args.context, device)[:2] for seq in validation)))
        return nll / count

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
        x, y = sample_batch(train_prose, train_chat, args.batch_size, args.context, generator)
        with autocast(device):
            logits = forward(input_ids=x, use_cache=False).logits
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
            val_loss = validation_loss()
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

    print("evaluating the saved files", flush=True)
    saved = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32, use_kernels=False).to(device)

    texts = {"held-out": cap(part["held_out"], args.eval_chars),
             **{f"{f.parent.name}/{f.name}": cap(paragraphs(read_text(f)), args.eval_chars) for f in unseen}}
    table = perplexity_table(saved, tokenizer, texts, args.context, device)
    held_chats = cap(chats["held_out"], args.eval_chars)
    nll, chat_tokens, _ = evaluate(saved, encode_chats(tokenizer, held_chats)[0], args.context, device)
    held_chat_figures = {"conversations": len(held_chats), "tokens": chat_tokens, "loss": round(nll / chat_tokens, 4),
                         "perplexity": round(math.exp(nll / chat_tokens), 2)}
    print(f"  held-out dialogue as chat turns: perplexity {held_chat_figures['perplexity']:.2f} over {chat_tokens:,} tokens")
    _, _, bits = evaluate(saved, with_bos(encode_prose(tokenizer, texts["held-out"])[0]), args.context, device, entropies=True)
    q = torch.quantile(bits, torch.tensor([0.1, 0.5, 0.9]))
    entropy = {
        "mean": round(bits.mean().item(), 3),
        "p10": round(q[0].item(), 3),
        "p50": round(q[1].item(), 3),
        "p90": round(q[2].item(), 3),
        "max": round(bits.max().item(), 3),
        "log2_vocab": round(math.log2(config.vocab_size), 3),
    }
    print(f"  held-out next-token entropy (bits): {entropy}")
    samples = sample_chats(args.out, device, args.seed)
    for s in samples:
        print(f"[{s['mode']}] " + " | ".join(f"{m['role']}: {one_line(m['content'])!r}" for m in s["messages"]))

    metrics = {
        "command": command,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "tokenizers": __import__("tokenizers").__version__},
        "parameters": n_params,
        "safetensors_bytes": (args.out / "model.safetensors").stat().st_size,
        "config": {k: getattr(config, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                   "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                   "max_position_embeddings", "tie_word_embeddings")} | {"rope_theta": ROPE_THETA},
        "training": {"steps": args.steps, "batch_size": args.batch_size, "context": args.context,
                     "chat_share": CHAT_SHARE, "lr": args.lr, "warmup": args.warmup, "dropout": args.dropout,
                     "seed": args.seed, "weight_decay": 0.1, "compile": args.compile,
                     "tokens_seen": args.steps * args.batch_size * args.context,
                     "epochs": round(args.steps * args.batch_size * args.context / (tokens["prose_train"] + tokens["chat_train"]), 1),
                     "seconds": round(train_seconds, 1), "best_step": best[1]},
        "data": [{"file": f"{f.parent.name}/{f.name}", "sha256": sha256(f), "license": LICENSES[f.parent.name],
                  **{name: sum(len(p) for p in splits[f][name]) for name in splits[f]}} for f in files],
        "unseen": [{"file": f"{f.parent.name}/{f.name}", "sha256": sha256(f), "license": LICENSES[f.parent.name],
                    "characters": len(read_text(f))} for f in unseen],
        "tokens": tokens,
        "conversations": {name: len(c) for name, c in chats.items()},
        "curve": curve,
        "evals": evals,
        "eval_chars": args.eval_chars,
        "perplexity": table,
        "held_out_chat": held_chat_figures,
        "entropy_bits": entropy,
        "samples": samples,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "MODEL_CARD.md").write_text(model_card(metrics), encoding="utf-8")
    print(f"wrote {args.out} in {metrics['seconds']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
