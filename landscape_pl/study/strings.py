"""Where a string's two ends come from when they are not given as checkpoints: trained here from a fit
config (one per seed), the start with its units permuted (appendix D), or the ends of the string
already in the folder (a resumed run needs no ends on its command line)."""

from __future__ import annotations

from pathlib import Path

from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.io import load_network, save_network
from landscape_pl.search.string import INDEX, BeadString


def string_ends(folder: Path, start: str | None, end: str | None, config: str | None, seeds: tuple[int, int],
                epochs: int | None, end_permutation: dict[str, list[int]] | None = None) -> tuple[str, str]:
    """The ends of the string in ``folder`` unless both are given (``connect`` then checks they are its
    ends); for a new string, the ends ``resolve_ends`` makes."""
    if (folder / INDEX).is_file() and not (start and end):
        first, last = BeadString.load(folder).settings["ends"]
        return first, last
    return resolve_ends(start, end, config, seeds, epochs, folder, end_permutation)


def resolve_ends(start: str | None, end: str | None, config: str | None, seeds: tuple[int, int], epochs: int | None,
                 out: Path, end_permutation: dict[str, list[int]] | None = None) -> tuple[str, str]:
    """The two end checkpoints: given, trained here from ``config`` (one per seed), or the start with permuted units."""
    if end_permutation is not None and end is not None:
        raise LandscapeError("give either --end or --end_permutation (the end is then the start with its units permuted), not both")
    if start and (end or end_permutation is not None):
        return start, end or permuted_copy(start, end_permutation, out / "ends" / "permuted.ckpt")
    if start or end:
        raise LandscapeError("give both --start and --end (or --end_permutation), or neither: both are then trained from --endpoint_config")
    if config is None:
        raise LandscapeError("give both --start and --end checkpoints, or --endpoint_config (a fit config) to train them from --seeds")
    from landscape_pl.recipes import find_config

    path = find_config(config)
    start = trained_end(path, out / "ends" / f"seed{seeds[0]}", seeds[0], epochs)
    if end_permutation is not None:
        return resolve_ends(start, None, None, seeds, epochs, out, end_permutation)
    return start, trained_end(path, out / "ends" / f"seed{seeds[1]}", seeds[1], epochs)


def trained_end(config: Path, root: Path, seed: int, epochs: int | None) -> str:
    """One end fitted through the CLI from ``seed`` (initialization and data order), or the one already there."""
    overrides = [f"--seed_everything={seed}", f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}"]
    return str(fit_run(config, root, *overrides, *([] if epochs is None else [f"--trainer.max_epochs={epochs}"])))


def permuted_copy(start: str, permutation: dict[str, list[int]], path: Path) -> str:
    """The start network with units permuted (appendix D: two hidden neurons swapped): the same function."""
    from landscape_pl.symmetry import from_lists, permute_network, spec_of

    loaded = load_network(start)
    network = permute_network(loaded.network, spec_of(loaded.network), from_lists(permutation))
    return str(save_network(network, path, loaded.task, loaded.spec))
