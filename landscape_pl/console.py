"""A quiet console around Lightning: no product tips, device banners or warnings that are not about our run.

Lightning prints, for every Trainer, which accelerators exist and tips about other products, and warns
about things our configs choose on purpose (few dataloader workers on small data, short epochs) or that
its own code does (deprecations between Lightning, jsonargparse and torch). A study trains many runs, so
these lines bury its own. ``quiet_lightning`` drops exactly these, by logger and message; every other
warning, ours included, is shown as before.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

# Lightning's informational lines that say nothing about the run.
BANNERS = re.compile(r"(GPU|TPU|HPU|IPU) available|LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES|💡 Tip:|`weights_only` was not set")
# The loggers those lines come from (rank_zero_info logs through the rank_zero loggers).
SOURCES = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)
# Lightning's own loggers: with ``info=False`` they show warnings and errors only, but for KEPT lines.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
# What a resumed fit says about resuming: the one INFO line a study's reader needs from a nested fit.
KEPT = re.compile(r"Restored all states from the checkpoint")
RANK_ZERO = "lightning.pytorch.utilities.rank_zero"
# Warnings about choices our configs and calls make on purpose (matched at the message's start).
CHOSEN = (
    "LightningCLI's args parameter",  # we hand LightningCLI an amended argument list on purpose
    r"The '\w+' does not have many workers",  # small bundled data loads fastest in the main process
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Consider setting `persistent_workers=True`",
)
# Deprecations raised inside the libraries we call (attributed to their modules, not ours).
LIBRARIES = r"(lightning|lightning_fabric|pytorch_lightning|torch|torchmetrics|jsonargparse)(\.|$)"


class DropBanners(logging.Filter):
    """Drops the records whose message matches BANNERS."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not BANNERS.search(record.getMessage())


class KeepOnly(logging.Filter):
    """Drops INFO records but those matching KEPT."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or bool(KEPT.search(record.getMessage()))


@contextmanager
def _filtered(names: tuple[str, ...], drop: logging.Filter) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


@contextmanager
def _level(names: tuple[str, ...], level: int) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels):
            logger.setLevel(previous)


@contextmanager
def quiet_lightning(info: bool = True) -> Iterator[None]:
    """Within: no device banners, product tips or chosen-on-purpose warnings from Lightning.

    ``info=False`` also hides Lightning's other INFO lines (seed set, fit stopped): a nested fit is one
    stage of a study, which prints its own line for it; only "Restored all states from the checkpoint"
    stays, so a resumed fit says so.
    """
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for message in CHOSEN:
            warnings.filterwarnings("ignore", message=message)
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
        stack.enter_context(_filtered(SOURCES, DropBanners()))
        if not info:
            stack.enter_context(_level(LIGHTNING_LOGGERS, logging.WARNING))
            stack.enter_context(_level((RANK_ZERO,), logging.INFO))
            stack.enter_context(_filtered((RANK_ZERO,), KeepOnly()))
        yield
