"""Training through LightningCLI, from a command line or from code (a study's stages).

``LandscapeCLI`` is LightningCLI with the project's defaults; ``fit_run`` trains one config into a
folder as a user's ``fit`` would, resuming a run interrupted there. Both live below the commands so
that studies and searches can train without importing the command line.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from landscape_pl.console import quiet_lightning
from landscape_pl.errors import LandscapeError
from landscape_pl.layout import LOGS, Run, resumable

LIGHTNING = ("fit", "validate", "test", "predict")


class LandscapeCLI(LightningCLI):
    """LightningCLI with the project's defaults: any LightningModule/DataModule chosen by class_path."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        super().__init__(
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            # only a training run's folder needs its config.yaml; validate/test/predict leave no files behind
            save_config_callback=SaveConfigCallback if not args or args[0] == "fit" else None,
            parser_kwargs={name: {"description": catalogue()} for name in LIGHTNING},  # shown by `fit --help` etc.
            args=args,
            run=run,
        )

    def before_fit(self) -> None:
        """``--ckpt_path last`` continues the latest run in place: same log version, same checkpoint folder.

        Lightning alone would open a new ``version_N`` whose checkpoint folder is empty and train from scratch.
        """
        if self.config_init[self.subcommand].get("ckpt_path") != "last":
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = self.trainer.logger
        if not isinstance(logger, TensorBoardLogger) or logger._version is not None:
            return
        versions = resumable(logger.root_dir)
        if not versions:
            raise LandscapeError(f"--ckpt_path last: no checkpoints/last.ckpt under {logger.root_dir}/version_*; nothing to resume")
        logger._version = versions[-1]


def catalogue() -> str:
    """The models, data modules and modules a config can name, for every --help."""
    from landscape_pl import data, models, modules

    def names(package) -> str:
        return ", ".join(f"{package.__name__}.{n}" for n in package.__all__ if n[0].isupper())

    return (
        f"Lightning modules: {names(modules)}\n"
        f"Networks (model.init_args.network): {names(models)}\n"
        f"Data modules (data): {names(data)}"
    )


def run_cli(args: Sequence[str]) -> LandscapeCLI:
    """LandscapeCLI on an argument list built in code, quietly: one stage of a study prints no banners, tips or
    INFO lines of its own (Lightning's warning about not reading sys.argv is moot here)."""
    with quiet_lightning(info=False):
        return LandscapeCLI(args=list(args))


def fit_run(config: str | Path, root: str | Path, *overrides: str) -> Path:
    """``fit`` through the CLI (as a user would) into ``root``; returns its last.ckpt.

    A run that already has a last.ckpt is resumed in place (``--ckpt_path last``): an interrupted
    run trains on to its ``max_epochs`` and a finished one returns at once, so nothing finished is
    recomputed and nothing half-done is taken for finished. A run killed before its first last.ckpt
    left nothing to resume: its folder is cleared and the fit starts afresh in ``version_0``, so the
    run is always ``layout.Run(root)``.
    """
    root = Path(root)
    resume = ["--ckpt_path=last"] if resumable(root / LOGS) else []
    if not resume and (root / LOGS).exists():
        shutil.rmtree(root / LOGS)
    progress = str(sys.stderr.isatty()).lower()  # bars on a terminal, not in logs (overrides may say otherwise)
    with warnings.catch_warnings():
        if resume:  # the checkpoint folder is in use on purpose: the run goes on in place
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        run_cli(["fit", "--config", str(config), f"--trainer.default_root_dir={root}",
                 f"--trainer.enable_progress_bar={progress}", "--trainer.enable_model_summary=false", *overrides, *resume])
    last = Run(root).last
    if not last.is_file():
        raise LandscapeError(f"fit of {config} wrote no last.ckpt under {root}: add a ModelCheckpoint with save_last: true")
    return last
