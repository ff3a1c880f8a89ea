"""Files written whole or not at all: the one way the project writes a file.

Content goes to a temporary file in the target's own folder (so the rename cannot cross file
systems), is flushed and fsynced, and is renamed over the target with ``os.replace``. A process killed
at any moment leaves the previous file or the new one, never half of one; the temporary file's name
is unique per process and call, so ranks or runs writing the same file never share one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def replacing(path: str | Path, mode: str = "w", **options: Any) -> Iterator[IO]:
    """A handle to write ``path``'s new content into (``mode`` "w" or "wb", ``options`` as for ``open``);
    the content becomes ``path`` when the block ends without error, and is discarded when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with open(descriptor, mode, **options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as handle:
        handle.write(text)
    return Path(path)


def copy_file(source: str | Path, target: str | Path) -> Path:
    with replacing(target, "wb") as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle)
    return Path(target)


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """A matplotlib figure as the image ``path`` names (its suffix gives the format)."""
    path = Path(path)
    with replacing(path, "wb") as handle:
        figure.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    return path
