"""The data module a run was trained on, rebuilt from the config.yaml LightningCLI saved beside it."""

from __future__ import annotations

from pathlib import Path

import yaml

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.layout import config_of
from landscape_pl.trust import check


def resolve_data(data: LandscapeDataModule | None, checkpoint: str | Path) -> LandscapeDataModule:
    """The data module given, else the one in the run's saved config."""
    if data is not None:
        return data
    config = config_of(checkpoint)
    if config is None:
        raise LandscapeError(
            f"no --data given and no config.yaml found next to {str(checkpoint)!r}'s run; "
            "pass --data (e.g. --data landscape_pl.data.DigitsDataModule)"
        )
    section = (yaml.safe_load(config.read_text()) or {}).get("data")
    if not section:
        raise LandscapeError(f"{config} has no 'data' section; pass --data")
    check(section.get("class_path") if isinstance(section, dict) else section, config, defaults=("landscape_pl.data",))
    return instantiate_data(section)


def instantiate_data(section: dict) -> LandscapeDataModule:
    """A data module from a config's ``data`` section (class_path + init_args)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LandscapeDataModule, "data")
    return parser.instantiate_classes(parser.parse_object({"data": section})).data
