"""The pocket model's text: which files it learns from and which it never sees, how each file is
split, the punctuation its tokenizer normalizes, and the turns of dialogue that teach it to chat.

Used by tools/train_pocket.py; nothing here needs torch.
"""

import random
import re
from pathlib import Path

TRAIN_END = 0.97  # fraction of each file's characters: paragraphs starting before it train
VALIDATION_END = 0.98  # ... then validation up to here; the rest (last 2%) is held out

# Never trained on, not even by the tokenizer: an Austen novel like the Pride and Prejudice
# that showed v1's trouble with curly quotes, and TinyStories, a different kind of English.
UNSEEN_BOOK = "austen-persuasion.txt"
TINYSTORIES = Path("tinystories-valid-head") / "tinystories_val.txt"

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"]  # ids 0, 1, 2 as in Llama
BOS, EOS, USER, ASSISTANT = 1, 2, 3, 4

# `<s>`, then each message: a role marker and the text, ended by `</s>`; a system message is a
# plain paragraph before the turns, as narration is in the books. The generation prompt ends on
# `<|assistant|>`, where the model's turn begins; it ends its turn with `</s>`, its eos.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{% elif message['role'] == 'assistant' %}<|assistant|>{% endif %}"
    "{{ message['content'] | trim }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# What the tokenizer's normalizer makes of typographic punctuation: what people type on a plain
# keyboard, and what the (ASCII) books write. NFKC runs first and already turns the ellipsis,
# non-breaking and other wide spaces, ligatures and full-width forms into plain characters.
PUNCTUATION = {
    "\u2018\u2019\u201a\u201b": "'",  # ‘ ’ ‚ ‛
    "\u201c\u201d\u201e\u201f": '"',  # “ ” „ ‟
    "\u2010\u2012\u2013\u2212": "-",  # hyphen, figure dash, en dash, minus (NFKC makes U+2011 U+2010)
    "\u2014\u2015": "--",  # em dash, horizontal bar: the books write "--"
    "\u00ad\u200b\u2060\ufeff": "",  # soft hyphen, zero-width space, word joiner, byte-order mark
}

LICENSES = {
    "nltk-gutenberg": "public-domain works (Project Gutenberg e-texts via NLTK's corpus; nltk repository Apache-2.0)",
    "tinyshakespeare": "public domain (Shakespeare; assembled by Andrej Karpathy in char-rnn, repository MIT)",
    "tinystories-valid-head": "CDLA-Sharing-1.0 (TinyStories, Eldan and Li)",
}

# Where the dialogue is: plays by speaker, novels by their quoted speeches. The Bible and the
# poems have too little of it to find reliably.
PLAY_PREFIXES = ("shakespeare-",)
NOVEL_PREFIXES = ("austen-", "carroll-", "chesterton-", "melville-")
MAX_TURNS = 8  # a conversation is 2 to 8 speeches of a dialogue, cut at seeded random places


def normalizer():
    from tokenizers import Regex, normalizers

    return normalizers.Sequence(
        [normalizers.NFKC(), *(normalizers.Replace(Regex(f"[{chars}]"), plain) for chars, plain in PUNCTUATION.items())]
    )


def typeset(text: str) -> str:
    """ASCII text as a modern edition prints it: curly quotes, em dashes, ellipses.

    The normalizer turns it back into the same ASCII, so the two score alike only where the
    tokenizer normalizes; without, it shows what v1 made of such text.
    """
    text = text.replace("...", "\u2026").replace("--", "\u2014")
    text = re.sub(r'(^|[\s(\[\u2014-])"', "\\1\u201c", text).replace('"', "\u201d")
    return re.sub(r"(^|[\s(\[\u2014-])'", "\\1\u2018", text).replace("'", "\u2019")


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Two of the NLTK books carry a few Latin-1 letters (Caesar's "æ", an "è" in Chesterton).
        text = raw.decode("latin-1")
    # Moby Dick has CRLF line ends and Paradise Lost ends in DOS end-of-file marks.
    return text.replace("\r\n", "\n").replace("\x1a", "")


def paragraphs(text: str) -> list[str]:
    """Blocks between blank lines; leading indentation is kept (verse)."""
    return [b.strip("\n").rstrip() for b in re.split(r"\n(?:[ \t]*\n)+", text) if b.strip()]


def source_files(data_dir: Path) -> list[Path]:
    """The NLTK Gutenberg books but the unseen one, and Tiny Shakespeare, in a fixed order."""
    books = sorted(p for p in (data_dir / "nltk-gutenberg").glob("*.txt") if p.name != UNSEEN_BOOK)
    shakespeare = data_dir / "tinyshakespeare" / "input.txt"
    if not books or not shakespeare.is_file():
        raise SystemExit(
            f"no training text under {data_dir}: expected nltk-gutenberg/*.txt and "
            "tinyshakespeare/input.txt (see ../shared/README.md); pass --data-dir"
        )
    return books + [shakespeare]


def unseen_files(data_dir: Path) -> list[Path]:
    files = [data_dir / "nltk-gutenberg" / UNSEEN_BOOK, data_dir / TINYSTORIES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"no unseen text for the evaluation: {', '.join(missing)} missing; copy it beside the rest")
    return files


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
    """The held-out paragraphs of every training file, in file order, separated by blank lines."""
    return "\n\n".join(p for f in source_files(data_dir) for p in split_file(f)["held_out"]) + "\n"


# ---- dialogue -------------------------------------------------------------------------------

def one_line(text: str) -> str:
    return " ".join(text.split())


def dialogues(path: Path, paragraphs: list[str]) -> list[list[str]]:
    """Runs of consecutive speeches by different speakers, each speech on one line."""
    if path.parent.name == "tinyshakespeare":
        return _script_dialogues(paragraphs)
    if path.name.startswith(PLAY_PREFIXES):
        return _play_dialogues(paragraphs)
    if path.name.startswith(NOVEL_PREFIXES):
        return _novel_dialogues(paragraphs)
    return []


def _runs(speeches) -> list[list[str]]:
    """(speaker, text) pairs, None between scenes, into runs; one speaker's speeches in a row join."""
    runs, run, last = [], [], None
    for speech in [*speeches, None]:
        if speech is None or not speech[1]:
            if len(run) > 1:
                runs.append(run)
            run, last = [], None
        elif speech[0] == last:
            run[-1] += " " + speech[1]
        else:
            run.append(speech[1])
            last = speech[0]
    return runs


def _script_dialogues(paragraphs: list[str]) -> list[list[str]]:
    """Tiny Shakespeare: each paragraph is "NAME:" on a line, then the speech."""
    def speech(p):
        m = re.fullmatch(r"([A-Z][A-Za-z' ]*):\n(.+)", p, re.S)
        return (m[1], one_line(m[2])) if m else None

    return _runs(speech(p) for p in paragraphs)


PLAY_SPEAKER = re.compile(r" {1,4}(\d|[A-Z][A-Za-z]*(?: [a-z]+)?)\.(?: (.*))?")
STAGE = re.compile(r"(Enter|Exit|Exeunt|Manet|Flourish|Alarum|Actus|Scena|Scoena|Sound|Thunder)\b")


def _play_dialogues(paragraphs: list[str]) -> list[list[str]]:
    """The NLTK plays: a speech starts on an indented line "  Macb. text" and runs on over
    unindented verse lines; stage directions end the scene's dialogue."""
    speeches, current = [], None
    for p in paragraphs:
        if not PLAY_SPEAKER.match(p):
            speeches.append(None)  # a title, a stage direction: the dialogue breaks
            current = None
            continue
        for line in p.split("\n"):
            if m := PLAY_SPEAKER.fullmatch(line):
                current = [m[1], m[2] or ""]
                speeches.append(current)
            elif STAGE.match(line):
                speeches.append(None)
                current = None
            elif current is not None:
                current[1] += " " + line
    return _runs((s[0], one_line(s[1])) if s else None for s in speeches)


def _novel_dialogues(paragraphs: list[str]) -> list[list[str]]:
    """Quoted speech in the novels: consecutive paragraphs that open with a quote are taken as
    speakers taking turns (a new speaker, a new paragraph); a paragraph whose double quote is
    left open is the same speaker going on. Only the words inside the quotes are kept."""
    speeches, turn = [], 0
    for p in paragraphs:
        text = p.lstrip()
        quote = text[:1]
        if quote not in ('"', "'"):
            speeches.append(None)
            continue
        # An opening quote follows a space or starts the text; a closing one is not followed by a
        # letter, so the apostrophes of "I've" or "it's" inside single-quoted speech stay.
        said = re.findall(rf"(?:^|(?<=[\s(\[-])){quote}(.+?)(?:{quote}(?!\w)|$)", text, re.S)
        words = one_line(" ".join(said))
        if words.endswith(","):  # "I am coming," said he.
            words = words[:-1] + "."
        speeches.append((turn, words))
        if not (quote == '"' and text.count('"') % 2):
            turn += 1
    return _runs(speeches)


def conversations(runs: list[list[str]], rng: random.Random) -> list[list[str]]:
    """Each run cut into conversations of 2 to MAX_TURNS speeches; a lone speech left is dropped."""
    out = []
    for run in runs:
        i = 0
        while len(run) - i >= 2:
            n = rng.randint(2, MAX_TURNS)
            out.append(run[i : i + n])
            i += n
    return out
