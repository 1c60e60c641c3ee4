"""The one error type for bad user input: the CLI prints it on one line and exits 2, the app shows it."""


class NnkitError(Exception):
    """A user-facing error (unknown name, missing run, bad number, unreadable file).

    Its message is one line a user can act on; callers never show a traceback for it.
    """


class Cancelled(Exception):
    """Raised inside a long job when its stop event is set (cooperative cancel)."""
