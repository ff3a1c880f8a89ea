"""One exception type for bad input: the CLI prints its message alone, without a traceback."""


class LandscapeError(ValueError):
    """Bad input a user can fix; the message names the file, key or value and what to do."""
