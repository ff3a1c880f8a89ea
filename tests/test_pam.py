"""PAM: exact permutations after every permutation phase, the projection, monotone objective, resume."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from landscape_pl.cli import LandscapeCLI, main
from landscape_pl.io import load_network
from landscape_pl.modules.pam import PAMModule
from landscape_pl.paths import line
from landscape_pl.symmetry import as_matrix, permute_network
from landscape_pl.symmetry.doubly_stochastic import project_doubly_stochastic

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits" / "pam.yaml"


def pam_args(endpoints, root: Path, iterations=2, permutation_epochs=1, curve_epochs=1, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(CONFIG), f"--trainer.default_root_dir={root}",
        f"--trainer.max_epochs={iterations * (permutation_epochs + curve_epochs)}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.limit_train_batches=8",
        f"--model.init_args.start={endpoints.a}", f"--model.init_args.end={endpoints.b}",
        f"--model.init_args.iterations={iterations}", f"--model.init_args.permutation_epochs={permutation_epochs}",
        f"--model.init_args.curve_epochs={curve_epochs}", *extra,
    ]


def checkpoint(root: Path) -> Path:
    (path,) = root.glob("lightning_logs/version_*/checkpoints/last.ckpt")
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_is_doubly_stochastic(seed: int) -> None:
    x = torch.eye(40) + torch.randn(40, 40, generator=torch.Generator().manual_seed(seed)) * 10.0 ** (seed - 2)
    p = project_doubly_stochastic(x)
    assert p.min() >= 0
    assert torch.allclose(p.sum(0), torch.ones(40), atol=1e-5) and torch.allclose(p.sum(1), torch.ones(40), atol=1e-5)


def test_straight_line_at_start(digits_endpoints) -> None:
    """θc = 0 and P = I is the straight line between the endpoints."""
    module = PAMModule(str(digits_endpoints.a), str(digits_endpoints.b))
    _, path = module.evaluation_path()
    a, b = load_network(digits_endpoints.a).network, load_network(digits_endpoints.b).network
    names = [n for n, _ in a.named_parameters()]
    straight = line(dict(a.named_parameters()), dict(b.named_parameters()), names)
    for t in (0.0, 0.25, 0.5, 1.0):
        assert torch.allclose(path.point(t), straight.point(t), atol=1e-6)
    assert torch.equal(path.point(0.0), straight.point(0.0))


class PermutationCheck(L.Callback):
    """At the start of every curve phase: each P is a permutation matrix, and θ2 permuted through
    the soft machinery computes what the index-permuted θ2 computes."""

    def __init__(self) -> None:
        self.checked = 0

    def on_train_epoch_start(self, trainer, module: PAMModule) -> None:
        if module.phase()[1] != "curve" or module.current_epoch % 2 != 1:
            return
        x = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))
        hard = {}
        for group, p in zip(module.permutation_spec.groups, module.perms):
            assert set(p.detach().unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(p.sum(0), torch.ones(group.size)) and torch.equal(p.sum(1), torch.ones(group.size))
            hard[group.name] = p.detach().argmax(1)
            assert torch.equal(as_matrix(hard[group.name]), p.detach())
        expected = permute_network(module.end_network, module.permutation_spec, hard).eval()(x)
        network = load_network(module.hparams.start).network.eval()
        network.load_state_dict(module.anchors.unflatten(module.permuted_end().detach()), strict=False)
        assert torch.allclose(network(x), expected, atol=1e-5)
        assert torch.allclose(expected, module.end_network.eval()(x), atol=1e-5)  # same function as θ2
        self.checked += 1


def test_permutation_phases_end_on_exact_permutations(digits_endpoints, tmp_path: Path) -> None:
    check = PermutationCheck()
    cli = LandscapeCLI(args=pam_args(
        digits_endpoints, tmp_path, 2, 1, 1, "--model.init_args.init_permutation=weight",
        "--model.init_args.permutation_lr=5.0")[1:], run=False)
    cli.trainer.callbacks.append(check)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert check.checked == 2
    assert any(not torch.equal(p.detach(), torch.eye(len(p))) for p in cli.model.perms)  # weight matching moved P


def test_objective_does_not_increase(digits_endpoints, tmp_path: Path) -> None:
    """Theorem 3.1, statement 1, on the fixed-sample objective: Q_k+1 + proximal terms <= Q_k."""
    main(pam_args(digits_endpoints, tmp_path, 3, 1, 1))
    history = json.loads((checkpoint(tmp_path).parents[1] / "pam_history.json").read_text())
    ends = [h for h in history if h["phase"] in ("start", "curve")]
    assert len(ends) == 4
    for before, after in zip(ends, ends[1:]):
        assert after["objective"] <= before["curve_loss"] + 1e-9
    assert ends[-1]["curve_loss"] < ends[0]["curve_loss"]


class StopAfterFirstEpoch(L.Callback):
    def on_train_epoch_end(self, trainer, module) -> None:
        trainer.should_stop = True


def test_resume_mid_phase_continues_exactly(digits_endpoints, tmp_path: Path) -> None:
    """Interrupted after epoch 0 of a 2-epoch permutation phase, a resumed run ends where an
    uninterrupted one does: same phase, P, θc and optimizer state."""
    args = lambda root: pam_args(digits_endpoints, root, 1, 2, 1, "--model.init_args.permutation_lr=5.0")  # noqa: E731
    main(args(tmp_path / "whole"))
    cli = LandscapeCLI(args=args(tmp_path / "cut")[1:], run=False)
    cli.trainer.callbacks.append(StopAfterFirstEpoch())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert torch.load(checkpoint(tmp_path / "cut"), weights_only=False)["global_step"] == 8
    main([*args(tmp_path / "cut"), "--ckpt_path=last"])
    whole = torch.load(checkpoint(tmp_path / "whole"), weights_only=False)
    cut = torch.load(checkpoint(tmp_path / "cut"), weights_only=False)
    assert cut["global_step"] == whole["global_step"] == 24
    for key, value in whole["state_dict"].items():
        assert torch.allclose(cut["state_dict"][key], value, atol=1e-6), key


@pytest.mark.parametrize(("option", "value", "message"), [
    ("permutation_epochs", "0", "permutation_epochs=0"),
    ("curve_epochs", "0", "curve_epochs=0"),
    ("nu_permutation", "0", "nu_permutation=0"),
    ("nu_curve", "-1", "nu_curve=-1"),
])
def test_bad_settings_are_named(digits_endpoints, tmp_path: Path, capsys, option: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(pam_args(digits_endpoints, tmp_path) + [f"--model.init_args.{option}={value}"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_wrong_epoch_count_says_what_to_set(digits_endpoints, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*pam_args(digits_endpoints, tmp_path), "--trainer.max_epochs=3"])
    assert "set trainer.max_epochs: 4" in capsys.readouterr().err
