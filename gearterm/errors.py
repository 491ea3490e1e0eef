"""Errors a user can meet on the command line: printed as one line, exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a message that says what is wrong and what to do."""


def one_line(text: str) -> str:
    """A message on one line: libraries' messages (transformers', servers') can span several."""
    return " ".join(text.split())
