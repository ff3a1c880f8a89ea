"""Learning a curve between two trained networks (Garipov et al. 2018; algorithm 2 of the alignment paper).

One mechanism for every architecture, a user's own ``nn.Module`` included: the anchors
[θ_start, control points..., θ_end] are rows of a (K, P) matrix, and a training step writes
θ(t) = Σ_k b_k(t) θ_k into an ordinary copy of the network (no graph), runs its ordinary forward
and backward, and scales the gradient into the anchors: ∂L/∂θ_k = b_k(t) ∂L/∂θ(t). The step hands
that gradient to Lightning as the gradient of a zero added to the loss (``InjectGradient``), so the
optimizer, gradient accumulation and DDP's all-reduce work as for any module.

Per-sample t: the batch is split into ``t_groups`` groups, each with its own t and its own
BatchNorm batch statistics (a group is an ordinary small batch of the network at its t). The
default 2 keeps BatchNorm's statistics over 32-64 examples at common batch sizes and costs nothing
next to a plain PyTorch training step of the same network (TinyTen, batch 128, one CPU thread, through
Trainer.fit: 0.87x the plain loop; one t per batch 1.13x; bench/curve.py). ``t_groups=1`` is the classic one t per
batch; ``t_groups=-1`` draws one t per example and runs all examples in one ``torch.func.vmap`` of
``functional_call`` over per-example parameters (BatchNorm then normalizes each example alone).
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.io import read_checkpoint
from landscape_pl.modules.between import CURVE_CLASS, BetweenEndpoints, is_curve, parameters_of
from landscape_pl.paths.anchors import Anchors, weighted_sum
from landscape_pl.paths.curves import Curve, CurveKind, basis, control_count, curve_class, on_segment
from landscape_pl.paths.gradients import draw_t, group_gradients


def roles(count: int, train_start: bool, train_end: bool) -> tuple[list[int], list[int]]:
    """(trained, held) anchor indices: control points are trained, each end only if freed."""
    trained = [k for k in range(count) if 0 < k < count - 1 or (k == 0 and train_start) or (k == count - 1 and train_end)]
    return trained, [k for k in range(count) if k not in trained]


def per_example_outputs(network: nn.Module, names: list[str], thetas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Outputs of the network at parameters ``thetas[g]`` (flat, anchor order) for inputs ``x[g]``, all g at once.

    One ``torch.func.vmap`` of ``functional_call``: convolutions and linear layers with batched
    weights become grouped ones. Buffers are copied per group, so BatchNorm in training mode
    normalizes each group over its own examples and in eval mode every group uses the network's
    statistics.
    """
    shapes = dict(network.named_parameters())
    sizes = [shapes[n].numel() for n in names]
    groups = thetas.shape[0]
    params = {n: chunk.reshape(groups, *shapes[n].shape) for n, chunk in zip(names, thetas.split(sizes, dim=1))}
    buffers = {n: b.unsqueeze(0).repeat(groups, *([1] * b.dim())) for n, b in network.named_buffers()}

    def one(p, b, xg):
        return torch.func.functional_call(network, (p, b), (xg,))

    return torch.func.vmap(one)(params, buffers, x)


class InjectGradient(torch.autograd.Function):
    """A zero whose gradient with respect to ``anchors`` is ``gradient`` (times the incoming gradient).

    Hands the scaled gradient to autograd, so Lightning's optimizer step, gradient accumulation
    and DDP's all-reduce treat the control points like any parameter, at no extra pass over them.
    """

    @staticmethod
    def forward(ctx, anchors: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        ctx.gradient = gradient
        return anchors.new_zeros(())

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        gradient = ctx.gradient
        return (gradient if bool(grad_output == 1) else gradient * grad_output), None


class CurveModule(BetweenEndpoints):
    """Learns the control points of a curve between two endpoint checkpoints.

    Args:
        start: endpoint checkpoint at t = 0 (any landscape_pl network checkpoint).
        end: endpoint checkpoint at t = 1; a permuted (aligned) copy of a network is just another checkpoint.
        curve: "bezier" (default, quadratic: equation 7 of the alignment paper) or "polychain".
        degree: Bezier degree (>= 1; degree - 1 control points).
        bends: bends of the polygonal chain (>= 0).
        train_start: also learn θ_start (fixed by default).
        train_end: also learn θ_end (fixed by default).
        t_groups: number of t per batch: each group of examples gets its own t and its own
            BatchNorm statistics; 1 is one t per batch; -1 is one t per example (vmap).
        vmap_groups: run the groups in one vmapped call instead of one ordinary pass per group.
        t_seed: seed of the t draws; t of step s depends on (t_seed, s, rank) only, so a resumed
            run draws the t it would have drawn.
        init: a curve checkpoint to take the control points from (default: on the straight segment).
        task: "classification" or "regression"; None takes the endpoints' task.
        optimizer: optimizer of the control points, e.g. ``torch.optim.SGD``.
        lr_scheduler: e.g. ``torch.optim.lr_scheduler.CosineAnnealingLR``, stepped per epoch.
    """

    def __init__(
        self,
        start: str,
        end: str,
        curve: CurveKind = "bezier",
        degree: int = 2,
        bends: int = 1,
        train_start: bool = False,
        train_end: bool = False,
        t_groups: int = 2,
        vmap_groups: bool = False,
        t_seed: int = 0,
        init: str | None = None,
        task: str | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if t_groups == 0 or t_groups < -1:
            raise LandscapeError(f"t_groups={t_groups}: use a positive group count, or -1 for one t per example")
        count = control_count(curve, degree, bends)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        a, b = self.load_endpoints(start, end, task)
        anchors = Anchors([parameters_of(a.network), parameters_of(b.network)], (start, end))
        if t_groups == -1 and any(isinstance(m, nn.BatchNorm1d) for m in a.network.modules()):
            raise LandscapeError("t_groups=-1 (one t per example) normalizes each example alone, which BatchNorm1d "
                                 "cannot do; use t_groups >= 2 (groups of examples share a t and their statistics)")
        rows = torch.cat([anchors.matrix[:1], on_segment(anchors.matrix[0], anchors.matrix[1], count), anchors.matrix[1:]])
        if init is not None:
            given = curve_rows(init)
            if given.shape != rows.shape:
                raise LandscapeError(f"init={init!r} has anchors of shape {tuple(given.shape)}; this curve needs {tuple(rows.shape)}")
            rows[1:-1] = given[1:-1]
        self.trained, self.held = roles(len(rows), train_start, train_end)
        if not self.trained:
            raise LandscapeError("nothing to learn: a straight line (degree 1 / bends 0) with both ends fixed; free an end")
        self.free = nn.Parameter(rows[self.trained].clone())
        self.register_buffer("fixed", rows[self.held].clone())
        anchors.matrix = None  # the rows live in free/fixed; the Anchors keeps names and shapes
        self.__dict__["anchors"] = anchors
        self.keep_scratch(a.network, anchors.names)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

    # -- the curve --------------------------------------------------------------------------
    def path(self) -> Curve:
        """The curve with the current anchors (detached), for evaluation and export."""
        anchors = copy.copy(self.anchors)
        anchors.matrix = self.rows()
        return curve_class(self.hparams.curve)(anchors)

    def rows(self) -> torch.Tensor:
        """All K anchors as one (K, P) matrix, in order [start, controls..., end]."""
        rows = self.fixed.new_empty(len(self.trained) + len(self.held), self.fixed.shape[1])
        rows[self.held], rows[self.trained] = self.fixed, self.free.detach()
        return rows

    def basis(self, ts: torch.Tensor) -> torch.Tensor:
        """(T, K) coefficients at the given t."""
        return basis(self.hparams.curve, len(self.trained) + len(self.held), ts).to(self.free)

    def anchor_rows(self) -> list[torch.Tensor]:
        """The K anchors as detached rows in curve order (views, no copy)."""
        rows = dict(zip(self.held, self.fixed)) | dict(zip(self.trained, self.free.detach()))
        return [rows[k] for k in range(len(rows))]

    def theta(self, coefficients: torch.Tensor) -> torch.Tensor:
        """θ(t) = Σ_k b_k θ_k for one coefficient row (no graph)."""
        return weighted_sum(self.anchor_rows(), coefficients.tolist())

    def evaluation_path(self) -> tuple[nn.Module, Curve]:
        """(network, curve): what PathEvaluation and the curve command evaluate on a grid of t."""
        return self.ready_network(), self.path()

    # -- training ---------------------------------------------------------------------------
    def group_gradients(self, x: torch.Tensor, y: torch.Tensor, coefficients: torch.Tensor):
        """(G, P) gradients of the batch-mean loss w.r.t. θ(t_g), one ordinary pass per group."""
        return group_gradients(self.slots, self.ready_network(), self.task, x, y, self.anchor_rows(), coefficients)

    def vmapped_gradients(self, x: torch.Tensor, y: torch.Tensor, coefficients: torch.Tensor):
        """(G, P) gradients w.r.t. θ(t_g) from one vmapped call over the G groups (G = batch: one t per example)."""
        network = self.ready_network()
        thetas = (coefficients[:, self.held] @ self.fixed + coefficients[:, self.trained] @ self.free.detach()).requires_grad_()
        groups = len(coefficients)
        outputs = per_example_outputs(network, self.anchors.names, thetas, x.reshape(groups, -1, *x.shape[1:]))
        outputs = outputs.reshape(len(y), *outputs.shape[2:])
        loss = self.task.summed_loss(outputs, y)
        (thetas_grad,) = torch.autograd.grad(loss / len(y), thetas)
        return thetas_grad, loss.detach(), self.task.correct(outputs.detach(), y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        network = self.ready_network()
        network.train()
        groups = len(y) if self.hparams.t_groups == -1 else min(self.hparams.t_groups, len(y))
        coefficients = self.basis(draw_t(self.hparams.t_seed, self.global_step, batch_idx, self.global_rank, groups))
        vmapped = self.hparams.t_groups == -1 or (self.hparams.vmap_groups and len(y) % groups == 0)
        grads, loss_sum, correct = (self.vmapped_gradients if vmapped else self.group_gradients)(x, y, coefficients)
        weights = coefficients[:, self.trained].t().tolist()  # ∂L/∂θ_k = Σ_g b_k(t_g) ∂L/∂θ(t_g)
        gradient = torch.stack([weighted_sum(list(grads), w) for w in weights])
        loss = loss_sum / len(y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        if self.task.has_accuracy:
            self.log("train/accuracy", correct / len(y), prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        return loss + InjectGradient.apply(self.free, gradient)

    def configure_optimizers(self):
        optimizer = self.optimizer([self.free])
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "epoch"}}

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the last epoch's training loss E_t L(r(t)): the paper's "training loss at convergence"."""
        loss = self.trainer.callback_metrics.get("train/loss_epoch")
        checkpoint["training_loss"] = None if loss is None else float(loss)

    def forward(self, x: torch.Tensor, t: float = 0.5) -> torch.Tensor:
        """The network at ``t`` with the statistics it holds (recompute BatchNorm first for meaningful outputs)."""
        self.slots.write(self.theta(self.basis(torch.tensor([float(t)]))[0]))
        return self.ready_network()(x)


def curve_rows(path: str) -> torch.Tensor:
    """The (K, P) anchors stored in a curve checkpoint, in order [start, controls..., end]."""
    checkpoint = read_checkpoint(path)
    if not is_curve(checkpoint):
        raise LandscapeError(f"{path!r} is not a curve checkpoint (written by fit with {CURVE_CLASS})")
    hparams, state = checkpoint["hyper_parameters"], checkpoint["state_dict"]
    count = control_count(hparams["curve"], hparams["degree"], hparams["bends"]) + 2
    trained, held = roles(count, hparams["train_start"], hparams["train_end"])
    rows = state["free"].new_empty(count, state["free"].shape[1])
    rows[held], rows[trained] = state["fixed"], state["free"]
    return rows


def load_curve(path: str) -> L.LightningModule:
    """A trained CurveModule or PAMModule from its checkpoint (its endpoint files must still be where
    training found them); both offer ``evaluation_path()``, ``task``, ``spec`` and ``slots``.

    ``read_checkpoint`` vets the file first (plain data, trusted classes); Lightning then reads it with
    ``weights_only=True`` too."""
    checkpoint = read_checkpoint(path)
    if is_curve(checkpoint):
        return CurveModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    if "pam_history" in checkpoint:
        from landscape_pl.modules.pam import PAMModule

        return PAMModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    raise LandscapeError(f"{path!r} is not a curve checkpoint (written by fit with {CURVE_CLASS} or PAMModule)")
