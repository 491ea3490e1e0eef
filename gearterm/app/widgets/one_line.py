"""One line of figures joined by " · ", where the terminal may be too narrow for all of them:
whole fields are left out, in the order each line chooses, never one cut part way (a cut field
reads as another figure: "context 74" of "context 74 of 4,096 used")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

SEPARATOR = " · "


def joined(fields: Mapping[str, Text]) -> Text:
    return Text(SEPARATOR).join(fields.values())


def fitted(fields: Mapping[str, Text], leave_out: Sequence[str], width: int) -> Text:
    """The fields joined, less as many of `leave_out` (the first named goes first) as the line
    needs to fit in `width` cells; all of them where `width` is 0 (not laid out yet)."""
    shown = dict(fields)
    for name in leave_out:
        if not width or joined(shown).cell_len <= width:
            break
        del shown[name]
    return joined(shown)
