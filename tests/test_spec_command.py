"""``python -m landscape_pl spec``: a checkpoint's permutation groups printed and checked by construction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from landscape_pl.cli import main
from landscape_pl.io import save_network
from landscape_pl.models import MLP, ResNet


class Rolled(nn.Module):
    """Hidden units rolled along their axis: a network whose spec cannot be derived."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 6), nn.Linear(6, 10)

    def forward(self, x):
        return self.b(torch.roll(self.a(x), 1, -1))


def groups(out: str) -> dict[str, str]:
    """Printed group name -> its "(N units): axes" text."""
    return dict(line.split(" ", 1) for line in out.splitlines() if " units): " in line)


def test_spec_prints_every_group_with_its_axes_and_the_check(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    ckpt = save_network(ResNet(8), tmp_path / "resnet.ckpt", "classification")
    main(["spec", "--ckpt", str(ckpt)])
    out = capsys.readouterr().out
    printed = groups(out)
    assert list(printed) == ["stream0", "blocks.0.conv1", "blocks.1.conv1", "stream1", "blocks.2.conv1", "stream2"]
    assert printed["blocks.0.conv1"] == ("(16 units): blocks.0.conv1.weight[0], blocks.0.bn1.weight[0], blocks.0.bn1.bias[0], "
                                         "blocks.0.bn1.running_mean[0], blocks.0.bn1.running_var[0], blocks.0.conv2.weight[1]")
    assert printed["stream2"].startswith("(64 units): ") and printed["stream2"].endswith("fc.weight[1]")
    assert "derived spec, check passed: 6 groups permuted at random change the outputs by" in out


def test_spec_takes_the_example_from_data(tmp_path: Path, capsys) -> None:
    ckpt = save_network(MLP(64, (5,)), tmp_path / "mlp.ckpt", "classification")
    main(["spec", "--ckpt", str(ckpt), "--data", "landscape_pl.data.DigitsDataModule"])
    out = capsys.readouterr().out
    assert groups(out) == {"layers.1": "(5 units): layers.1.weight[0], layers.1.bias[0], layers.3.weight[1]"}
    assert "derived spec, check passed: 1 groups" in out


def test_spec_of_an_underivable_network_names_the_node(tmp_path: Path, capsys) -> None:
    spec = {"class_path": f"{__name__}.Rolled", "init_args": {}}
    ckpt = save_network(Rolled(), tmp_path / "rolled.ckpt", "classification", spec)
    with pytest.raises(SystemExit) as exit_:
        main(["spec", "--ckpt", str(ckpt)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot derive a permutation spec for Rolled: graph node roll (call_function roll, in module <top>)" in err
    assert "permutation_spec(self)" in err and "Traceback" not in err
