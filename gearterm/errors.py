"""Errors a user can meet on the command line: printed as one line, exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a message that says what is wrong and what to do."""


def one_line(text: str) -> str:
    """A message on one line that any stream can print: libraries' messages (transformers',
    servers') can span several lines, and argv bytes that were not UTF-8 are lone surrogates."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")
