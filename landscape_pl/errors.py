"""One exception type for bad input: the CLI prints its message alone, without a traceback."""

from __future__ import annotations


class LandscapeError(ValueError):
    """Bad input a user can fix; the message names the file, key or value and what to do.

    jsonargparse re-raises errors from a class's ``__init__`` as its own ValueError, with our text
    inside; ``raised`` keeps the latest instance so the CLI can still print just that message.
    """

    raised: LandscapeError | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        LandscapeError.raised = self


def user_error(err: BaseException) -> LandscapeError | None:
    """The LandscapeError behind ``err``: itself, one in its chain, or one whose text it carries."""
    seen = err
    while seen is not None:
        if isinstance(seen, LandscapeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    latest = LandscapeError.raised
    return latest if latest is not None and str(latest) in str(err) else None
