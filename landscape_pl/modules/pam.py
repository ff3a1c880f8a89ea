"""Proximal alternating minimization (PAM) over neuron permutations and a curve (section 3.1 of the
alignment paper, equations 6 and 8).

The curve is r(t) = (1 - t)² θ1 + 2(1 - t)t ((θ1 + Pθ2)/2 + θc) + t² Pθ2 = (1 - t) θ1 + 2t(1 - t) θc + t Pθ2,
so with θc = 0 and P = I it is the straight line. Epochs alternate by phase:

- permutation phase: θc frozen; every permutation group's P is relaxed to a doubly stochastic matrix
  and moved by projected SGD on the curve loss + (ν_P/2)‖P − P_k‖², projected back after every step
  by alternating projections; at the end of the phase each P is rounded to the nearest permutation.
- curve phase: P fixed; θc trained on the curve loss + (ν_φ/2)‖θc − θc_k‖².

Training steps use the same trick as the CurveModule: write θ(t_g) into an ordinary network, take
∂L/∂θ(t_g) from its ordinary backward, and pass t_g ∂L/∂θ(t_g) through the (soft) permutation of θ2
or 2t_g(1 - t_g) ∂L/∂θ(t_g) into θc. The permutation acts on BatchNorm weights and biases with their
channels; running statistics are recomputed along the curve for evaluation.
"""

from __future__ import annotations

import copy
import json
from itertools import islice
from pathlib import Path

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from landscape_pl.atomic import write_text
from landscape_pl.data.subsets import alignment_batches  # the subset `align --fraction` uses
from landscape_pl.errors import LandscapeError
from landscape_pl.modules.between import BetweenEndpoints, parameters_of
from landscape_pl.modules.endpoint import checkpoint_dir
from landscape_pl.paths.anchors import Anchors
from landscape_pl.paths.curves import Bezier
from landscape_pl.paths.evaluate import Evaluation
from landscape_pl.paths.gradients import draw_t, group_gradients
from landscape_pl.symmetry import as_matrix, assign, find_permutation, from_lists, permute, spec_of
from landscape_pl.symmetry.doubly_stochastic import project_doubly_stochastic

PHASES = ("permutation", "curve")


def pam_coefficients(ts: torch.Tensor) -> torch.Tensor:
    """(T, 3) weights of [θ1, θc, Pθ2] in equation 8."""
    t = ts.reshape(-1, 1)
    return torch.cat([1 - t, 2 * t * (1 - t), t], dim=1)


class PAMModule(BetweenEndpoints):
    """PAM between two endpoint checkpoints; ``trainer.max_epochs`` must be iterations × (both phases).

    Args:
        start: endpoint checkpoint θ1 (t = 0).
        end: endpoint checkpoint θ2, whose hidden units are permuted (t = 1 is Pθ2).
        iterations: outer PAM iterations (the paper's 4).
        permutation_epochs: epochs of each permutation phase (the paper's 20).
        curve_epochs: epochs of each curve phase (the paper's 40).
        nu_permutation: ν_P of the proximal term on P.
        nu_curve: ν_φ of the proximal term on θc.
        permutation_lr: step size of projected SGD on P (annealed like the curve's).
        anneal: learning rates of both phases are multiplied by this at every outer iteration.
        projection_iterations: alternating projections after each step (at least; more until feasible).
        init_permutation: "identity" (PAM Unaligned), "activation" or "weight" (PAM Aligned: the
            alignment of the end to the start), or the path of a permutation.json written by ``align``.
        alignment_fraction: share of the training data used by activation alignment: the seeded random
            subset ``align --fraction`` takes (its default seed 0), so P(0) is the permutation ``align`` writes.
        t_groups: t values per batch; each group of examples has its own t (as in CurveModule).
        t_seed: seed of the t draws (keyed by step, so resuming draws the same t).
        objective_points: t grid on [0, 1] of the fixed-sample objective logged per iteration.
        objective_batches: training batches of that objective (and its BatchNorm recomputation).
        task: None takes the endpoints' task.
        optimizer: optimizer of θc, e.g. ``torch.optim.SGD`` with the endpoints' hyperparameters.
    """

    def __init__(
        self,
        start: str,
        end: str,
        iterations: int = 4,
        permutation_epochs: int = 20,
        curve_epochs: int = 40,
        nu_permutation: float = 1.0,
        nu_curve: float = 1e-3,
        permutation_lr: float = 1e-3,
        anneal: float = 0.5,
        projection_iterations: int = 20,
        init_permutation: str = "identity",
        alignment_fraction: float = 0.2,
        t_groups: int = 2,
        t_seed: int = 0,
        objective_points: int = 5,
        objective_batches: int = 2,
        task: str | None = None,
        optimizer: OptimizerCallable = torch.optim.SGD,
    ) -> None:
        super().__init__()
        for name, value in (("iterations", iterations), ("permutation_epochs", permutation_epochs),
                            ("curve_epochs", curve_epochs), ("t_groups", t_groups), ("objective_points", objective_points)):
            if value < 1:
                raise LandscapeError(f"{name}={value}: PAM needs at least 1")
        for name, value in (("nu_permutation", nu_permutation), ("nu_curve", nu_curve), ("permutation_lr", permutation_lr)):
            if not value > 0:
                raise LandscapeError(f"{name}={value} must be > 0 (the proximal terms and steps need it)")
        self.save_hyperparameters(ignore=["optimizer"])
        self.automatic_optimization = False
        a, b = self.load_endpoints(start, end, task)
        self.permutation_spec = spec_of(a.network)  # raises, saying how to declare one, when there is none
        anchors = Anchors([parameters_of(a.network), parameters_of(b.network)], (start, end))
        self.register_buffer("start_theta", anchors.matrix[0].clone())
        self.register_buffer("end_theta", anchors.matrix[1].clone())
        self.offset = nn.Parameter(torch.zeros_like(anchors.matrix[0]))
        self.register_buffer("offset_center", torch.zeros_like(anchors.matrix[0]))
        self.perms = nn.ParameterList([nn.Parameter(torch.eye(g.size)) for g in self.permutation_spec.groups])
        for i, group in enumerate(self.permutation_spec.groups):
            self.register_buffer(f"center_{i}", torch.eye(group.size))
        anchors.matrix = None
        self.__dict__.update(anchors=anchors, end_network=b.network, history=[], hard_end=None)
        self.keep_scratch(a.network, anchors.names)
        self.optimizer = optimizer

    # -- the curve ------------------------------------------------------------------------------
    def permutations(self) -> dict[str, torch.Tensor]:
        return {g.name: p for g, p in zip(self.permutation_spec.groups, self.perms)}

    def permuted_end(self) -> torch.Tensor:
        """Pθ2 as a flat vector, differentiable in the (soft) permutation matrices."""
        state = permute(self.anchors.unflatten(self.end_theta), self.permutation_spec, self.permutations())
        return torch.cat([state[n].reshape(-1) for n in self.anchors.names])

    def fixed_end(self) -> torch.Tensor:
        """Pθ2 for the current P without a graph, cached while P does not move (curve phase)."""
        if self.hard_end is None or self.phase()[1] == "permutation":
            with torch.no_grad():
                self.__dict__["hard_end"] = self.permuted_end()
        return self.hard_end

    def control_point(self) -> torch.Tensor:
        return (self.start_theta + self.fixed_end()) / 2 + self.offset.detach()

    def evaluation_path(self) -> tuple[nn.Module, Bezier]:
        """The quadratic Bezier curve θ1 → Pθ2 with control point (θ1 + Pθ2)/2 + θc (equation 8)."""
        anchors = copy.copy(self.anchors)
        anchors.matrix = torch.stack([self.start_theta, self.control_point(), self.fixed_end()])
        return self.ready_network(), Bezier(anchors)

    # -- phases ---------------------------------------------------------------------------------
    def phase(self, epoch: int | None = None) -> tuple[int, str]:
        """(outer iteration, phase name) of an epoch (default: the current one)."""
        epoch = self.current_epoch if epoch is None else epoch
        iteration, rest = divmod(epoch, self.hparams.permutation_epochs + self.hparams.curve_epochs)
        return iteration, PHASES[rest >= self.hparams.permutation_epochs]

    def setup(self, stage: str) -> None:
        total = self.hparams.iterations * (self.hparams.permutation_epochs + self.hparams.curve_epochs)
        if stage == "fit" and self.trainer.max_epochs != total:
            raise LandscapeError(
                f"trainer.max_epochs={self.trainer.max_epochs} but PAM runs iterations × (permutation_epochs + "
                f"curve_epochs) = {total} epochs: set trainer.max_epochs: {total}"
            )
        if stage == "fit" and self.trainer.ckpt_path is None:
            self.initialize_permutations()

    def initialize_permutations(self) -> None:
        """P(0): identity, an alignment of the end to the start, or a saved permutation.json."""
        choice = self.hparams.init_permutation
        if choice == "identity":
            return
        if choice in ("activation", "weight"):
            batches = alignment_batches(self.trainer.datamodule, self.hparams.alignment_fraction, 0) if choice == "activation" else None
            found = find_permutation(self.network, self.end_network, choice, batches, self.permutation_spec)
        elif Path(choice).is_file():
            saved = json.loads(Path(choice).read_text())
            found = from_lists(saved.get("permutation", saved))
        else:
            raise LandscapeError(f"init_permutation={choice!r}: use identity, activation, weight or a permutation.json path")
        with torch.no_grad():
            for group, p in zip(self.permutation_spec.groups, self.perms):
                p.copy_(as_matrix(found[group.name]))

    def on_train_epoch_start(self) -> None:
        iteration, phase = self.phase()
        first = self.current_epoch % (self.hparams.permutation_epochs + self.hparams.curve_epochs)
        with torch.no_grad():
            if first == 0:  # a new outer iteration: P_k is where P is now
                for i, p in enumerate(self.perms):
                    getattr(self, f"center_{i}").copy_(p)
            if first == self.hparams.permutation_epochs:  # curve phase: φ_k is where θc is now
                self.offset_center.copy_(self.offset)
                self.__dict__["hard_end"] = None
        for optimizer in self.optimizers():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * self.hparams.anneal**iteration
        self.log("pam/iteration", float(iteration), on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        iteration, phase = self.phase()
        last = (self.current_epoch + 1) % (self.hparams.permutation_epochs + self.hparams.curve_epochs)
        if phase == "permutation" and last == self.hparams.permutation_epochs:
            with torch.no_grad():
                for p in self.perms:
                    p.copy_(as_matrix(assign(p.detach().cpu()), p.dtype))
            self.__dict__["hard_end"] = None
            self.record("permutation", iteration)
        if last == 0:
            self.record("curve", iteration)

    def on_train_start(self) -> None:
        if self.global_step == 0 and not self.history:
            self.record("start", -1)

    def record(self, phase: str, iteration: int) -> None:
        """The fixed-sample objective (curve loss + proximal terms) at a phase's end, logged and kept."""
        loss = self.fixed_objective()
        entry = {"iteration": iteration, "phase": phase, "curve_loss": loss, **self.proximal_terms()}
        if phase != "curve":  # Q(φ_k, P_k+1) + (ν_P/2)‖P_k+1 − P_k‖²: θc has not moved yet in this iteration
            entry["prox_curve"] = 0.0
        entry["objective"] = loss + entry["prox_permutation"] + entry["prox_curve"]
        self.history.append(entry)
        if self.logger is not None and hasattr(self.logger, "experiment") and hasattr(self.logger.experiment, "add_scalar"):
            self.logger.experiment.add_scalar(f"pam/objective_end_of_{phase}_phase", entry["objective"], iteration + 1)
        directory = checkpoint_dir(self.trainer).parent if self.trainer.log_dir else None
        if directory is not None and self.global_rank == 0:
            directory.mkdir(parents=True, exist_ok=True)
            write_text(directory / "pam_history.json", json.dumps(self.history, indent=1))

    def proximal_terms(self) -> dict[str, float]:
        with torch.no_grad():
            prox_p = sum(((p - getattr(self, f"center_{i}")) ** 2).sum() for i, p in enumerate(self.perms))
            prox_c = ((self.offset - self.offset_center) ** 2).sum()
        return {"prox_permutation": float(self.hparams.nu_permutation / 2 * prox_p),
                "prox_curve": float(self.hparams.nu_curve / 2 * prox_c)}

    def fixed_objective(self) -> float:
        """Mean loss over a fixed t grid and fixed training batches, BatchNorm recomputed at each t."""
        batches = list(islice(self.trainer.datamodule.eval_dataloader("train"), self.hparams.objective_batches))
        ts = torch.linspace(0, 1, self.hparams.objective_points).tolist()
        network, path = self.evaluation_path()
        evaluation = Evaluation({"train": batches}, self.task, bn_data=batches, progress=False)
        was_training = network.training
        rows = evaluation.path(network, path, ts, desc="PAM objective")
        network.train(was_training)
        return sum(r.loss for r in rows) / len(rows)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        network = self.ready_network()
        network.train()
        iteration, phase = self.phase()
        ts = draw_t(self.hparams.t_seed, self.global_step, batch_idx, self.global_rank, min(self.hparams.t_groups, len(y)))
        coefficients = pam_coefficients(ts.to(self.start_theta))
        end = self.permuted_end() if phase == "permutation" else self.fixed_end()
        rows = [self.start_theta, self.offset.detach(), end.detach()]
        grads, loss_sum, correct = group_gradients(self.slots, network, self.task, x, y, rows, coefficients)
        permutation_optimizer, curve_optimizer = self.optimizers()
        if phase == "permutation":
            prox = self.hparams.nu_permutation / 2 * sum(
                ((p - getattr(self, f"center_{i}")) ** 2).sum() for i, p in enumerate(self.perms))
            surrogate = (end * (coefficients[:, 2] @ grads)).sum() + prox + 0 * self.offset.sum()
            optimizer = permutation_optimizer
        else:
            prox = self.hparams.nu_curve / 2 * ((self.offset - self.offset_center) ** 2).sum()
            surrogate = (self.offset * (coefficients[:, 1] @ grads)).sum() + prox + 0 * sum(p.sum() for p in self.perms)
            optimizer = curve_optimizer
        optimizer.zero_grad()
        self.manual_backward(surrogate)
        optimizer.step()
        if phase == "permutation":
            with torch.no_grad():
                for p in self.perms:
                    p.copy_(project_doubly_stochastic(p, self.hparams.projection_iterations))
        loss = loss_sum / len(y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        if self.task.has_accuracy:
            self.log("train/accuracy", correct / len(y), on_step=True, on_epoch=True, batch_size=len(y))
        self.log("pam/objective", loss + prox.detach(), on_step=True, on_epoch=False, batch_size=len(y))
        self.log("pam/phase", float(PHASES.index(phase)), on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def configure_optimizers(self):
        permutation = torch.optim.SGD(list(self.perms), lr=self.hparams.permutation_lr)
        curve = self.optimizer([self.offset])
        for optimizer in (permutation, curve):
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        return [permutation, curve]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The objective history, and the last epoch's training loss (the paper's Table 5), as CurveModule."""
        checkpoint["pam_history"] = self.history
        loss = self.trainer.callback_metrics.get("train/loss_epoch")
        checkpoint["training_loss"] = None if loss is None else float(loss)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.__dict__["history"] = list(checkpoint.get("pam_history", []))

