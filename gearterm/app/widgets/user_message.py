"""A message the user sent, shown as typed (no Markdown, no markup)."""

from textual.widgets import Static


class UserMessage(Static):
    def __init__(self, text: str):
        super().__init__(text, markup=False)
        self.text = text
