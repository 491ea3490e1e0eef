"""Errors a user can meet on the command line: printed as one line, exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a message that says what is wrong and what to do."""
