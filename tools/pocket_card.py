"""The pocket model's MODEL_CARD.md, written from the figures train_pocket.py measured.

train_pocket.py writes it beside the model; to write it again from a run's figures:

    python tools/pocket_card.py OUT/metrics.json > gearterm/models/pocket/MODEL_CARD.md
"""

import json
import sys
from pathlib import Path

from pocket_text import PUNCTUATION, UNSEEN_BOOK

FORMS = (
    ("file_normalized", "as in the file"),
    ("file_raw", "as in the file, not normalized"),
    ("typeset_normalized", "typeset"),
    ("typeset_raw", "typeset, not normalized"),
)


def _char(c: str) -> str:
    return f"`{c}`" if c.isprintable() and not c.isspace() and c != "\u00ad" else f"U+{ord(c):04X}"


def perplexity_rows(table: dict) -> list[str]:
    rows = [
        "| text | characters | " + " | ".join(label for _, label in FORMS) + " |",
        "| --- | --- |" + " --- |" * len(FORMS),
    ]
    for name, row in table.items():
        cells = [f"{row[form]['perplexity']:.2f} ({row[form]['bits_per_character']:.3f})" for form, _ in FORMS]
        rows.append(f"| {name} | {row['characters']:,} | " + " | ".join(cells) + " |")
    return rows


def model_card(m: dict) -> str:
    c, t, e, chat = m["config"], m["training"], m["entropy_bits"], m["held_out_chat"]
    every = max(1, len(m["curve"]) // 12)
    val = {r["step"]: r["validation_loss"] for r in m["evals"]}
    rows = m["curve"][::every] + ([m["curve"][-1]] if (len(m["curve"]) - 1) % every else [])
    tokens = m["tokens"]
    punctuation = "; ".join(
        f"{' '.join(_char(ch) for ch in chars)} to {'nothing' if not plain else f'`{plain}`'}"
        for chars, plain in PUNCTUATION.items()
    )
    lines = [
        "# pocket — gearterm's built-in model (version 2)",
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
        f"| context | {c['max_position_embeddings']:,} tokens (RoPE base {c['rope_theta']:,.0f}) |",
        f"| embeddings | tied with the LM head: {c['tie_word_embeddings']} |",
        f"| parameters | {m['parameters']:,} |",
        f"| model.safetensors | {m['safetensors_bytes']:,} bytes, bfloat16 |",
        "",
        "Every projection's input width (256 or 640) is a multiple of 128, the gear format's group size.",
        "",
        "**Chat format.** The chat template writes `<s>`, then each message as a role marker, its text and",
        "`</s>`: `<s><|user|>Who art thou?</s><|assistant|>A friend.</s>`. A system message is a plain",
        "paragraph before the turns, without a marker. The generation prompt ends on `<|assistant|>`; the",
        "model's reply ends with `</s>`, its end-of-sequence token.",
        "",
        "**Punctuation.** The tokenizer (`tokenizer.json`) normalizes text before it splits it: NFKC (the",
        "ellipsis to `...`, non-breaking and other wide spaces to a space, ligatures and full-width forms",
        f"to plain letters), then {punctuation}. The books are plain ASCII, so this reads curly quotes and",
        "dashes the way the model learnt them, in a prompt or in any text scored with the tokenizer.",
        "",
        "## Data and licenses",
        "",
        "Each file is cut at line starts: the first 97% of its characters train, the next 1% is validation",
        "(picks the checkpoint), the last 2% is held out (used only for the figures below;",
        "`python tools/train_pocket.py --write-held-out FILE` writes it). Each part is then split into",
        "paragraphs at blank lines. Dialogue in each part is also written as conversations in the chat",
        "format: in the plays, consecutive speeches by different speakers; in the novels, consecutive",
        "paragraphs that open with a quote, the words inside the quotes only; each run cut into",
        f"conversations of 2 to 8 speeches. {t['chat_share']:.0%} of each batch's windows are conversations; the",
        "rest are `<s>` + text from a paragraph start and crops from anywhere, half each.",
        "",
        "| file | license | train / validation / held-out chars | sha256 |",
        "| --- | --- | --- | --- |",
        *[
            f"| ../shared/data/{d['file']} | {d['license']} | {d['train']:,} / {d['validation']:,} / "
            f"{d['held_out']:,} | `{d['sha256'][:16]}…` |"
            for d in m["data"]
        ],
        "",
        f"Tokens: prose train {tokens['prose_train']:,}, validation {tokens['prose_validation']:,}, held-out "
        f"{tokens['prose_held_out']:,}; conversations ({m['conversations']['train']:,} in training) train "
        f"{tokens['chat_train']:,}, validation {tokens['chat_validation']:,}, held-out {tokens['chat_held_out']:,}.",
        "",
        "Never trained on, not even by the tokenizer (used only for the figures below):",
        "",
        "| file | license | characters | sha256 |",
        "| --- | --- | --- | --- |",
        *[
            f"| ../shared/data/{d['file']} | {d['license']} | {d['characters']:,} | `{d['sha256'][:16]}…` |"
            for d in m["unseen"]
        ],
        "",
        f"{UNSEEN_BOOK} stands in for the Pride and Prejudice that showed version 1's trouble with curly",
        "quotes. Sources and checksums in full: the PROVENANCE.md files beside the data.",
        "",
        "## Training",
        "",
        "```",
        m["command"],
        "```",
        "",
        f"- hardware: {m['device']}; torch {m['versions']['torch']}, transformers "
        f"{m['versions']['transformers']}, tokenizers {m['versions']['tokenizers']}",
        f"- {t['steps']:,} steps of {t['batch_size']} windows x {t['context']:,} tokens "
        f"({t['tokens_seen']:,} tokens, {t['epochs']} passes over the training streams) in {t['seconds']:.0f} s"
        f"{' (torch.compile)' if t['compile'] else ''}; the whole script, tokenizer to samples, {m['seconds']:.0f} s",
        f"- AdamW (betas 0.9, 0.95; weight decay {t['weight_decay']}), peak lr {t['lr']}, {t['warmup']} warm-up steps, "
        f"cosine to 10%; residual dropout {t['dropout']}; bf16 autocast on CUDA; seed {t['seed']}",
        f"- saved checkpoint: step {t['best_step']:,}, the lowest validation loss (prose and conversations together)",
        "",
        "| step | train loss (mean since previous row) | validation loss |",
        "| --- | --- | --- |",
        *[f"| {r['step']:,} | {r['train_loss']:.3f} | {val.get(r['step'], '')} |" for r in rows],
        "",
        "## Perplexity (the saved 16-bit files, loaded with transformers)",
        "",
        "Perplexity per token, and in brackets bits per character of the file's text (comparable across",
        "the columns and with other tokenizers). *Typeset*: the text with curly quotes, em dashes and",
        "ellipses, as a modern edition prints it; *not normalized*: the same tokenizer with its normalizer",
        "removed, as version 1 read text. Each text is scored as one stream of paragraphs, each token with",
        f"at least {c['max_position_embeddings'] // 2:,} tokens before it (or all since the start).",
        *([f"Only the first {m['eval_chars']:,} characters of each text were scored (`--eval-chars`)."]
          if m["eval_chars"] else []),
        "",
        *perplexity_rows(m["perplexity"]),
        "",
        f"- held-out dialogue in the chat format ({chat['conversations']:,} conversations): perplexity "
        f"{chat['perplexity']:.2f} over {chat['tokens']:,} tokens",
        f"- next-token entropy on the held-out text: mean {e['mean']:.2f} bits, p10 {e['p10']:.2f}, p50 {e['p50']:.2f}, "
        f"p90 {e['p90']:.2f}, max {e['max']:.2f} (log2 of the vocabulary: {e['log2_vocab']:.0f})",
        "",
        f"## Sample chats (the saved files on {m['device']}, chat template, {m['samples'][0]['max_new_tokens']} new tokens a reply at most)",
        "",
        "Two turns each; greedy output on another device or in another precision can part from these",
        "after a few tokens.",
        "",
    ]
    for s in m["samples"]:
        how = "greedy" if s["mode"] == "greedy" else f"sampled, temperature {s['temperature']}, top-p {s['top_p']}"
        lines += [f"*{how}*", ""]
        for message in s["messages"]:
            who = "**you**" if message["role"] == "user" else "**pocket**"
            lines += [f"> {who}: " + message["content"].strip().replace("\n", "\n> "), ">"]
        lines[-1] = ""
    lines += [
        "## Limits",
        "",
        "A toy for watching gears, not an assistant. It has read a few million tokens of 16th-19th century",
        "English (the King James Bible is a third of it), knows nothing after that and nothing outside these",
        "books, does not follow instructions and invents freely. Its replies answer a turn in the manner of",
        "a speech in a play or a novel; they do not carry facts. Use it to see entropy and gear shifts on a",
        "real distribution; use a real model for anything else.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(model_card(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
