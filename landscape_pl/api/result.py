"""What every library call returns: the rows and the summary, the files the command writes, a figure.

A result is plain data, so a notebook reads ``result.rows`` or ``result.summary`` directly; the
matching command is ``result.save(out)``, which writes exactly the files it always wrote, and
``result.plot()`` draws the figure that goes into them. Saving happens on rank 0 only under
torchrun, with every rank held until the files exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from landscape_pl.atomic import save_figure
from landscape_pl.distributed import on_rank_zero
from landscape_pl.errors import LandscapeError
from landscape_pl.layout import claim

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Result(ABC):
    """A library call's outcome; subclasses are dataclasses holding rows, summary and whatever they plot."""

    @abstractmethod
    def write(self, folder: Path, tensorboard: bool) -> None:
        """Write the command's files into ``folder`` (called on rank 0 only)."""

    @abstractmethod
    def plot(self) -> Figure:
        """The result's figure (the one its files hold as PNG)."""

    def write_figure(self, path: Path, tag: str | None = None) -> None:
        """``plot()`` as the PNG at ``path`` and, with a ``tag``, in the TensorBoard run beside it."""
        from landscape_pl.plots import plt

        figure = self.plot()
        save_figure(figure, path)
        if tag is not None:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(path.parent / "tensorboard")) as writer:
                writer.add_figure(tag, figure, 0, close=False)
        plt.close(figure)

    def save(self, folder: str | Path, tensorboard: bool = False) -> Path:
        """Write the files the matching command writes into ``folder`` (and a TensorBoard run in
        ``folder/tensorboard`` when asked), holding it (``layout.claim``) so that two saves never mix
        their files; returns the folder."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise LandscapeError(f"{folder} is an existing file, but save writes its files into a folder there: "
                                 "give another folder, or move that file away")

        def write() -> None:
            with claim(folder):
                self.write(folder, tensorboard)

        on_rank_zero(write)
        return folder
