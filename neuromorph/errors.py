"""The one exception type for errors a user can cause; the CLI turns it into one line and exit status 1."""


class NeuromorphError(Exception):
    """A user-facing error: bad input, a missing or corrupt file, an unsupported layer or setting."""
