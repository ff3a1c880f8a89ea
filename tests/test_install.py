"""The recipes ship inside the package: a wheel installed in a fresh environment, run away from the repository,
lists them and runs a small twin by name; find_config and ``--config NAME`` resolve paths and bare names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import CONFIGS as REPO_CONFIGS
from conftest import command_of

from landscape_pl.cli import main, resolve_configs
from landscape_pl.errors import LandscapeError
from landscape_pl.recipes import CONFIGS, find_config, recipes

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from, copied out so that the build leaves no build/ or egg-info in the checkout.
SOURCES = ("pyproject.toml", "README.md", "landscape_pl")


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(c) for c in command], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv holding only the wheel (dependencies from this interpreter, through a .pth)."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work / "dist", source, cwd=work)
    (wheel,) = (work / "dist").glob("landscape_pl-*.whl")
    env = work / "env"
    venv.create(env, system_site_packages=True)
    python = env / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check", wheel, cwd=work)
    return python


def away(tmp_path: Path) -> dict[str, str]:
    """An environment in which nothing points at the checkout."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def test_the_installed_wheel_lists_and_runs_its_recipes(installed: Path, tmp_path: Path) -> None:
    env = away(tmp_path)
    where = run(installed, "-c", "import landscape_pl, landscape_pl.recipes as r; print(landscape_pl.__file__); print(r.CONFIGS)",
                cwd=tmp_path, env=env).split()
    assert all(Path(p).is_relative_to(installed.parents[1]) for p in where), where
    assert not any(Path(p).resolve().is_relative_to(ROOT) for p in where), where

    listed = run(installed, "-m", "landscape_pl", "recipes", cwd=tmp_path, env=env)
    assert "studies/straight_line_digits.yaml" in listed and "studies/alignment_digits.yaml" in listed

    # its endpoints name configs/digits/mlp.yaml: that too resolves inside the installed package
    run(installed, "-m", "landscape_pl", "lines", "--config", "straight_line_digits", cwd=tmp_path, env=env)
    out = tmp_path / "runs" / "straight_line_digits"
    for report in ("report/report.md", "line/mlp500/path.csv", "line/mlp500/summary.json", "line/mlp500/path.png"):
        assert (out / report).is_file(), report


def test_the_repository_configs_are_the_packaged_ones() -> None:
    assert CONFIGS == ROOT / "landscape_pl" / "configs"
    assert (ROOT / "configs").is_symlink() and REPO_CONFIGS.resolve() == CONFIGS.resolve()


def test_find_config_by_path_relative_path_and_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine.yaml"
    mine.write_text("seeds: [1]\n")
    assert find_config(mine) == mine and find_config("mine.yaml") == Path("mine.yaml")  # a file as given wins
    packaged = CONFIGS / "studies" / "alignment_digits.yaml"
    for name in ("configs/studies/alignment_digits.yaml", "studies/alignment_digits.yaml", "alignment_digits",
                 "alignment_digits.yaml"):
        assert find_config(name) == packaged, name


def test_find_config_names_the_candidates_of_an_ambiguous_name() -> None:
    with pytest.raises(LandscapeError, match=r"several recipes: configs/digits/mlp.yaml, configs/mnist/mlp.yaml"):
        find_config("mlp")
    assert find_config("digits/mlp.yaml") == CONFIGS / "digits" / "mlp.yaml"


def test_an_unknown_config_says_what_was_tried_and_where_to_look() -> None:
    with pytest.raises(LandscapeError) as error:
        find_config("no_such_recipe")
    message = str(error.value)
    assert "'no_such_recipe' not found" in message and str(CONFIGS) in message
    assert "a recipe named 'no_such_recipe'" in message and "python -m landscape_pl recipes" in message


def test_recipes_lists_every_packaged_yaml_once(capsys: pytest.CaptureFixture[str]) -> None:
    found = recipes()
    files = sorted(CONFIGS.rglob("*.yaml"))
    assert [r.file for r in found] == files
    for recipe in found:
        assert recipe.description and "\n" not in recipe.description, recipe.path
        assert recipe.command == command_of(recipe.file), recipe.path  # the tests' convention
    assert {r.command for r in found} >= {"fit", "study", "lines", "connect", "sweep", "trajectory-experiment"}

    main(["recipes"])
    listed = capsys.readouterr().out.splitlines()
    for recipe in found:
        (row,) = [line for line in listed if line.split()[:1] == [str(recipe.path)]]
        assert row.split()[1] == recipe.command
    assert "studies/" in listed and "digits/" in listed  # grouped by folder


def test_config_names_are_resolved_before_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    line, mlp = CONFIGS / "studies" / "straight_line_digits.yaml", CONFIGS / "digits" / "mlp.yaml"
    inline = "trainer: {max_epochs: 1}"
    argv = ["lines", "--config", "straight_line_digits", "--config=digits/mlp.yaml", "-c", "configs/digits/mlp.yaml",
            "--config", inline, "--out", "mlp"]
    assert resolve_configs(argv) == ["lines", "--config", str(line), f"--config={mlp}", "-c", str(mlp),
                                     "--config", inline, "--out", "mlp"]
    for command, name in (("lines", "straight_line_digits"), ("fit", "mlp_watch_path")):  # jsonargparse CLI and LightningCLI
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--config", name, "--print_config"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--config=no_such_recipe"])
    assert exit_info.value.code == 2 and "python -m landscape_pl recipes" in capsys.readouterr().err
