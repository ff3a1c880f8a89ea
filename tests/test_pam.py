"""PAM: exact permutations after every permutation phase, the projection, monotone objective, resume."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from landscape_pl.cli import LandscapeCLI, main
from landscape_pl.data import DigitsDataModule
from landscape_pl.io import load_network, save_network
from landscape_pl.modules.pam import PAMModule
from landscape_pl.paths import line
from landscape_pl.paths.anchors import NetworkSlots
from landscape_pl.paths.batchnorm import recompute_batchnorm
from landscape_pl.symmetry import as_matrix, permute_network, random_permutations
from landscape_pl.symmetry.doubly_stochastic import project_doubly_stochastic

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "digits"
CONFIG = CONFIGS / "pam.yaml"
BN_CONFIG = CONFIGS / "tinynet_pam.yaml"


def pam_args(endpoints, root: Path, iterations=2, permutation_epochs=1, curve_epochs=1, *extra: str, config: Path = CONFIG) -> list[str]:
    return [
        "fit", "--config", str(config), f"--trainer.default_root_dir={root}",
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


class StopAfterEpoch(L.Callback):
    """Interrupts a run at the end of one epoch (after last.ckpt of that epoch is written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def fit_until(args: list[str], epoch: int, resume: bool) -> None:
    """``fit`` through the CLI's parser, interrupted after ``epoch``; ``resume``: from the run's last.ckpt,
    in its own version folder (what ``--ckpt_path last`` does through the CLI)."""
    cli = LandscapeCLI(args=args[1:], run=False)
    cli.trainer.callbacks.append(StopAfterEpoch(epoch))
    if resume:
        cli.trainer.logger._version = 0
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path="last" if resume else None)


def assert_identical(a, b, where: str = "checkpoint") -> None:
    """Bit-exact equality of nested checkpoint content (tensors by torch.equal, dtype included)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def test_resume_mid_phase_continues_exactly(digits_endpoints, tmp_path: Path) -> None:
    """A run interrupted inside a permutation phase (stateless SGD on P) and again inside a curve phase
    (θc under SGD with momentum 0.9, before the learning rates are annealed for iteration 2) ends bit
    for bit where an uninterrupted one does: P, θc, the centres, both optimizers' states and learning
    rates, the objective history. Schedule: 2 iterations of 2 permutation + 2 curve epochs."""
    args = lambda root: pam_args(digits_endpoints, root, 2, 2, 2, "--model.init_args.permutation_lr=5.0",  # noqa: E731
                                 "--trainer.limit_train_batches=4")
    main(args(tmp_path / "whole"))
    cut = args(tmp_path / "cut")
    fit_until(cut, 0, resume=False)  # epoch 0 of the first permutation phase (epochs 0-1)
    first = torch.load(checkpoint(tmp_path / "cut"), weights_only=False)
    assert (first["epoch"], first["global_step"]) == (0, 4)  # closes epoch 0: resumes at epoch 1, still permutation
    fit_until(cut, 2, resume=True)  # epoch 0 of the first curve phase (epochs 2-3)
    second = torch.load(checkpoint(tmp_path / "cut"), weights_only=False)
    assert (second["epoch"], second["global_step"]) == (2, 12)  # closes epoch 2: resumes at epoch 3, still curve
    momentum = second["optimizer_states"][1]["state"][0]["momentum_buffer"]
    assert momentum.abs().sum() > 0  # what the resumed curve phase must carry on with
    assert second["optimizer_states"][1]["param_groups"][0]["lr"] == 0.05  # not yet annealed
    assert [h["phase"] for h in second["pam_history"]] == ["start", "permutation"]
    main([*cut, "--ckpt_path=last"])
    whole = torch.load(checkpoint(tmp_path / "whole"), weights_only=False)
    resumed = torch.load(checkpoint(tmp_path / "cut"), weights_only=False)
    assert resumed["global_step"] == whole["global_step"] == 32
    assert whole["optimizer_states"][1]["param_groups"][0]["lr"] == 0.05 * 0.5  # annealed in iteration 2
    assert_identical(resumed["state_dict"], whole["state_dict"], "state_dict")
    assert_identical(resumed["optimizer_states"], whole["optimizer_states"], "optimizer_states")
    assert_identical(resumed["pam_history"], whole["pam_history"], "pam_history")


def test_tensorboard_marks_phases_and_their_end_objectives(digits_endpoints, tmp_path: Path) -> None:
    """pam/objective and pam/phase (0 permutation, 1 curve) at every step, the paper's Figure 10;
    pam/objective_end_of_<phase>_phase once per outer iteration (step = iteration), as in pam_history.json."""
    batches, iterations = 3, 2
    main([*pam_args(digits_endpoints, tmp_path, iterations, 1, 1, "--model.init_args.permutation_lr=5.0"),
          f"--trainer.limit_train_batches={batches}", "--trainer.log_every_n_steps=1"])
    run = checkpoint(tmp_path).parents[1]
    (path,) = run.glob("events.out.tfevents.*")
    events = EventAccumulator(str(path), size_guidance={"scalars": 0}).Reload()
    scalars = lambda tag: [(e.step, e.value) for e in events.Scalars(tag)]  # noqa: E731
    assert {"pam/objective", "pam/phase", "pam/objective_end_of_start_phase", "pam/objective_end_of_permutation_phase",
            "pam/objective_end_of_curve_phase"} <= set(events.Tags()["scalars"])
    steps = list(range(iterations * 2 * batches))  # epochs alternate permutation, curve; `batches` steps each
    phases = [float((step // batches) % 2) for step in steps]
    assert scalars("pam/phase") == list(zip(steps, phases))
    objective, loss = scalars("pam/objective"), dict(scalars("train/loss_step"))
    assert [s for s, _ in objective] == steps
    for (step, value), phase in zip(objective, phases):
        if step % batches == 0:  # a phase's first step: P = P_k and θc = θc_k, no proximal term yet
            assert value == loss[step], step
        else:  # the objective is the curve loss plus a proximal term >= 0
            assert value >= loss[step], step
    assert objective[1][1] > loss[1]  # P moved in the first step (permutation_lr=5): ν_P/2 ‖P − P_k‖² > 0
    history = json.loads((run / "pam_history.json").read_text())
    for phase in ("start", "permutation", "curve"):
        expected = [(h["iteration"] + 1, h["objective"]) for h in history if h["phase"] == phase]
        logged = scalars(f"pam/objective_end_of_{phase}_phase")
        assert [s for s, _ in logged] == [s for s, _ in expected] == ([0] if phase == "start" else [1, 2])
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)


def end_of_curve(module: PAMModule) -> nn.Module:
    """The network at t = 1 of the module's curve, written as every evaluation writes it."""
    network, path = module.evaluation_path()
    path.write(NetworkSlots(network, path.anchors.names), 1.0)
    return network


def end_of_curve_with_stale_statistics(module: PAMModule) -> nn.Module:
    """Pθ2 written into the network with the statistics it already had (the start's): what one gets
    without recomputation, since PAM keeps no running statistics of its own."""
    network = end_of_curve(module)
    network.load_state_dict(load_network(module.hparams.start).network.state_dict() | dict(network.named_parameters()))
    return network.eval()


def assert_end_is_permuted_end(module: PAMModule, x: torch.Tensor, bn_batches: list) -> None:
    """The PAM curve's end Pθ2, BatchNorm statistics recomputed, is permute_network(θ2) with its statistics
    recomputed the same way, bit for bit; BatchNorm weights and biases are permuted with their channels."""
    spec = module.permutation_spec
    perms = {}
    for group, p in zip(spec.groups, module.perms):
        perms[group.name] = p.detach().argmax(1)
        assert torch.equal(as_matrix(perms[group.name]), p.detach())  # a hard permutation
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    end = load_network(module.hparams.end).network
    expected = permute_network(end, spec, perms)
    pam_end = end_of_curve(module)
    norms = [n for n, m in end.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    params = dict(pam_end.named_parameters())
    for name, value in expected.named_parameters():
        assert torch.equal(params[name], value), name
    for name in norms:  # BatchNorm affine parameters: the end's, reordered by the group's permutation
        (group,) = [g for g in spec.groups if any(a.entry == f"{name}.weight" for a in g.axes)]
        for entry in ("weight", "bias"):
            original = dict(end.named_parameters())[f"{name}.{entry}"]
            assert torch.equal(params[f"{name}.{entry}"], original[perms[group.name]])
    for network in (pam_end, expected, end):
        recompute_batchnorm(network, bn_batches)
        network.eval()
    buffers = dict(pam_end.named_buffers())
    for name, value in expected.named_buffers():
        assert torch.equal(buffers[name], value), name
    with torch.no_grad():
        out = pam_end(x)
        assert torch.equal(out, expected(x))
        assert torch.allclose(out, end(x), atol=1e-4)  # and it computes what θ2 does
        assert not torch.allclose(out, end_of_curve_with_stale_statistics(module)(x), atol=1e-2)  # recomputing matters


def bn_data() -> tuple[torch.Tensor, list]:
    """Test images to compare outputs on, and the training batches statistics are recomputed on."""
    data = DigitsDataModule(flatten=False)
    x, _ = next(iter(data.eval_dataloader("test")))
    return x, list(data.eval_dataloader("train"))


def test_batchnorm_end_is_the_permuted_end_network(digits_bn_endpoints) -> None:
    """configs/digits/tinynet_pam.yaml-style Conv-BN endpoints, P set to random permutations."""
    module = PAMModule(str(digits_bn_endpoints.a), str(digits_bn_endpoints.b))
    perms = random_permutations(module.permutation_spec, seed=3)
    with torch.no_grad():
        for group, p in zip(module.permutation_spec.groups, module.perms):
            p.copy_(as_matrix(perms[group.name]))
    assert_end_is_permuted_end(module, *bn_data())


class InitialPermutation(L.Callback):
    def on_train_start(self, trainer, module: PAMModule) -> None:
        self.perms = [p.detach().clone() for p in module.perms]


def test_activation_init_starts_where_align_puts_the_end(digits_bn_endpoints, tmp_path: Path) -> None:
    """PAM Aligned (init_permutation: activation, alignment_fraction 0.2) starts from the permutation
    ``align --fraction 0.2`` writes for the same endpoints, as from that permutation.json (the study's
    route); after the run, the BatchNorm end is still the permuted end network."""
    a, b = str(digits_bn_endpoints.a), str(digits_bn_endpoints.b)
    main(["align", "--start", a, "--end", b, "--out", str(tmp_path / "align"), "--fraction", "0.2", "--points", "0",
          "--tensorboard", "false", "--progress", "false"])
    saved = json.loads((tmp_path / "align" / "permutation.json").read_text())["permutation"]
    cli = LandscapeCLI(args=pam_args(digits_bn_endpoints, tmp_path / "pam", 1, 1, 1, "--trainer.limit_train_batches=2",
                                     "--model.init_args.init_permutation=activation",
                                     "--model.init_args.alignment_fraction=0.2", config=BN_CONFIG)[1:], run=False)
    initial = InitialPermutation()
    cli.trainer.callbacks.append(initial)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    groups = cli.model.permutation_spec.groups
    assert [g.name for g in groups] == list(saved)
    for group, p in zip(groups, initial.perms):
        assert torch.equal(p, as_matrix(torch.tensor(saved[group.name]))), group.name
    assert any(saved[g.name] != list(range(g.size)) for g in groups)
    from_json = PAMModule(a, b, init_permutation=str(tmp_path / "align" / "permutation.json"))
    from_json.initialize_permutations()
    for p, q in zip(from_json.perms, initial.perms):
        assert torch.equal(p.detach(), q)
    assert_end_is_permuted_end(cli.model, *bn_data())


class TwoBranch(nn.Module):
    """An architecture whose spec cannot be derived (its hidden units are rolled), and none is declared."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right, self.head = nn.Linear(64, 16), nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.left(x)) + torch.roll(torch.relu(self.right(x)), 1, 1))


def test_endpoints_without_a_permutation_spec_say_how_to_declare_one(tmp_path: Path, capsys) -> None:
    spec = {"class_path": f"{__name__}.TwoBranch", "init_args": {}}
    ends = [save_network(TwoBranch(), tmp_path / f"{name}.ckpt", "classification", spec) for name in "ab"]
    with pytest.raises(SystemExit) as exit_:
        main(pam_args(SimpleNamespace(a=ends[0], b=ends[1]), tmp_path / "pam"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot derive a permutation spec for TwoBranch" in err
    assert "permutation_spec(self) -> landscape_pl.symmetry.PermutationSpec" in err
    assert "landscape_pl.symmetry.register(YourClass" in err
    assert "Traceback" not in err


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
