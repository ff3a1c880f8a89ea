"""REPAIR: identity at the ends, the target statistics at t, exported points, REPAIR = RESET where RESET
already matches, bad input named, and the option through the API, the commands and the study."""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import landscape_pl as lp
from landscape_pl.api.lines import PathResult
from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network
from landscape_pl.models import MLP, ResNet
from landscape_pl.paths import NetworkSlots, line
from landscape_pl.paths.fixups import RecomputeBatchNorm
from landscape_pl.symmetry.repair import Repair, RepairWarning, measure, repair

QUIET = ["--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]


def train_batches(batch_size: int) -> DataLoader:
    """The digits training split in deterministic batches (``batch_size`` >= 1438: one batch)."""
    return DataLoader(DigitsDataModule(flatten=True).split("train"), batch_size=batch_size)


def images(batch_size: int) -> DataLoader:
    return DataLoader(DigitsDataModule(flatten=False).split("train"), batch_size=batch_size)


def pair(endpoints) -> tuple[nn.Module, nn.Module]:
    return load_network(endpoints.a).network, load_network(endpoints.b).network


def on_line(a: nn.Module, b: nn.Module, t: float) -> nn.Module:
    """A copy of ``a`` holding θ(t) of the line a -> b, no fix-up."""
    network, path = copy.deepcopy(a), line(a.state_dict(), b.state_dict())
    path.write(NetworkSlots(network, path.anchors.names), t)
    return network


def walked(a: nn.Module, b: nn.Module, data: DataLoader, t: float, reset: bool, exact: bool = False) -> tuple[nn.Module, Repair]:
    """θ(t) of the line a -> b, RESET (when asked) and REPAIRed as a walk does it, with its fix-up."""
    network, path = copy.deepcopy(a), line(a.state_dict(), b.state_dict())
    before = RecomputeBatchNorm(data) if reset else None
    fixup = Repair(data, reset=before, exact=exact)
    fixup.prepare(network, path)
    path.write(NetworkSlots(network, path.anchors.names), t)
    if before is not None:
        before.apply(network, t)
    fixup.apply(network, t)
    return network, fixup


@pytest.mark.parametrize("kind", ["mlp", "batchnorm"])
def test_repair_leaves_the_ends_as_they_are(kind, digits_endpoints, digits_bn_endpoints):
    """At t = 0 and t = 1 the point is an endpoint: REPAIR changes nothing, over several batches too."""
    a, b = pair(digits_endpoints if kind == "mlp" else digits_bn_endpoints)
    data = (train_batches if kind == "mlp" else images)(300)
    for t, end in ((0.0, a), (1.0, b)):
        network, _ = walked(a, b, data, t, reset=kind == "batchnorm")
        reference = copy.deepcopy(end)
        RecomputeBatchNorm(data).apply(reference, None)
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(network.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("kind", ["mlp", "batchnorm"])
def test_repaired_units_have_the_mixture_of_the_ends_statistics(kind, digits_endpoints, digits_bn_endpoints):
    """At t = 0.3 every corrected unit has mean 0.7 μ_A + 0.3 μ_B and std 0.7 σ_A + 0.3 σ_B (1e-5) on
    the batch it was measured on; before the fix-ups (RESET, REPAIR) they were off by far more."""
    a, b = pair(digits_endpoints if kind == "mlp" else digits_bn_endpoints)
    data = (train_batches if kind == "mlp" else images)(2000)
    network, fixup = walked(a, b, data, 0.3, reset=kind == "batchnorm")
    stats = fixup.statistics
    assert [s.norm is not None for s in stats.sites] == [kind == "batchnorm"] * len(stats.sites)
    after = measure(network, stats.sites, data)
    plain = on_line(a, b, 0.3)
    before = measure(plain, stats.sites, data)
    for index in range(len(stats.sites)):
        mean, std = stats.target(index, [0.7, 0.3])
        torch.testing.assert_close(after[index].mean, mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after[index].std, std, atol=1e-5, rtol=1e-5)
    assert max(float((b.std - stats.target(i, [0.7, 0.3])[1]).abs().max()) for i, b in enumerate(before)) > 1e-3


@pytest.mark.parametrize("kind", ["mlp", "batchnorm"])
def test_exact_repair_gives_the_mixture_over_several_batches(kind, digits_bn_endpoints):
    """Over 5 batches the one-pass correction is close but not exact wherever one site feeds another (per-batch
    corrections upstream differ from the folded ones); exact=True, a pass per site, gives every unit the
    mixture's mean and std over all batches (1e-5). A 3-hidden-layer MLP, and the BatchNorm TinyNet."""
    if kind == "mlp":
        torch.manual_seed(0)
        a, b = (MLP(64, [64, 64, 64], init="kaiming") for _ in range(2))
    else:
        a, b = pair(digits_bn_endpoints)
    data = (train_batches if kind == "mlp" else images)(300)
    assert len(data) == 5
    errors = {}
    for exact in (False, True):
        network, fixup = walked(a, b, data, 0.3, reset=kind == "batchnorm", exact=exact)
        stats = fixup.statistics
        after = measure(network, stats.sites, data)
        errors[exact] = max(float(((m.std - stats.target(i, [0.7, 0.3])[1]) / stats.target(i, [0.7, 0.3])[1])[stats.correct[i]].abs().max())
                            for i, m in enumerate(after))
        if exact:
            for index, moments in enumerate(after):
                mean, std = stats.target(index, [0.7, 0.3])
                keep = stats.correct[index]
                torch.testing.assert_close(moments.mean[keep], mean[keep], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(moments.std[keep], std[keep], atol=1e-5, rtol=1e-5)
    assert errors[True] < 1e-5 and 1e-4 < errors[False] < 0.05, errors


def test_repair_on_batchnorm_equals_reset_where_reset_already_matches(digits_bn_endpoints):
    """BatchNorm outputs after RESET have mean β(t) and std ≈ γ(t): with γ of one sign in both ends that is
    already the target, and REPAIR leaves the RESET network as it is."""
    a, b = pair(digits_bn_endpoints)
    data = images(2000)
    network, fixup = walked(a, b, data, 0.5, reset=True)
    reset_only = on_line(a, b, 0.5)
    RecomputeBatchNorm(data).apply(reset_only, None)
    measured = measure(reset_only, fixup.statistics.sites, data)
    for index, moments in enumerate(measured):  # the premise: RESET already gives the target statistics
        mean, std = fixup.statistics.target(index, [0.5, 0.5])
        torch.testing.assert_close(moments.mean, mean, atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(moments.std, std, atol=2e-3, rtol=2e-3)
    for name, value in reset_only.state_dict().items():
        torch.testing.assert_close(network.state_dict()[name], value, atol=2e-3, rtol=2e-3, msg=name)
    x = next(iter(images(64)))[0]
    network.eval(), reset_only.eval()
    torch.testing.assert_close(network(x), reset_only(x), atol=1e-2, rtol=1e-2)


def test_interpolate_with_repair_keeps_the_ends_and_changes_the_middle(digits_endpoints):
    options = {"t": [0.0, 0.5, 1.0], "splits": ["test"], "accelerator": "cpu", "progress": False}
    plain = lp.interpolate(digits_endpoints.a, digits_endpoints.b, **options)
    repaired = lp.interpolate(digits_endpoints.a, digits_endpoints.b, repair=True, **options)
    assert repaired.summary["repair"] is True and "repair" not in plain.summary
    for one, two in zip(plain.rows, repaired.rows):
        if one.key in (0.0, 1.0):
            assert two.loss == pytest.approx(one.loss, rel=1e-6)
        else:
            assert abs(two.loss - one.loss) > 1e-3


def test_an_exported_repaired_curve_point_validates_to_the_row(digits_endpoints, tmp_path):
    from test_curves import fit_curve

    ckpt = fit_curve(tmp_path / "curve", digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=1",
                     "--trainer.limit_train_batches=4")
    main(["curve", "--ckpt", str(ckpt), "--out", str(tmp_path / "cli"), "--t", "[0.0, 0.5, 1.0]", "--repair", "true", *QUIET])
    rows = {(r.key, r.split): r for r in PathResult.load(tmp_path / "cli").rows}
    unrepaired = lp.evaluate_curve(ckpt, t=[0.5], splits=["test"], accelerator="cpu", progress=False).rows[0]
    assert abs(rows[(0.5, "test")].loss - unrepaired.loss) > 1e-4
    main(["curve-point", "--ckpt", str(ckpt), "--t", "0.5", "--repair", "true", "--out", str(tmp_path / "mid.ckpt"),
          "--accelerator", "cpu"])
    validated = LandscapeCLI(args=model_from_checkpoint(["validate", "--ckpt_path", str(tmp_path / "mid.ckpt"), "--data",
                                                         "landscape_pl.data.DigitsDataModule", "--trainer.logger=false",
                                                         "--trainer.enable_progress_bar=false"]))
    assert float(validated.trainer.callback_metrics["val/loss"]) == pytest.approx(rows[(0.5, "test")].loss, rel=1e-5)
    ensembles = lp.curve_ensembles(ckpt, t_sets=[[0.5]], accelerator="cpu", repair=True)
    assert ensembles.rows[0]["accuracy"] == pytest.approx(rows[(0.5, "test")].accuracy)


def test_align_reports_the_repaired_line(digits_endpoints, tmp_path):
    main(["align", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--out", str(tmp_path),
          "--points", "5", "--repair", "true", "--tensorboard", "false", "--progress", "false"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["barrier"]) == set(report["midpoint_accuracy"]) == {"unaligned", "aligned", "aligned_repair"}
    repaired = PathResult.load(tmp_path / "aligned_repair")
    assert report["midpoint_accuracy"]["aligned_repair"]["test"] == next(
        r.accuracy for r in repaired.rows if r.key == 0.5 and r.split == "test")
    assert report["midpoint_accuracy"]["aligned_repair"]["test"] != report["midpoint_accuracy"]["aligned"]["test"]


def test_plane_with_repair_keeps_its_three_networks(digits_endpoints):
    networks = [digits_endpoints.a, digits_endpoints.b, digits_endpoints.a_init]
    options = {"networks": networks, "points": 2, "splits": ["test"], "accelerator": "cpu", "progress": False}
    plain, repaired = lp.plane(**options), lp.plane(repair=True, **options)
    assert [r.loss for r in repaired.anchor_rows] == pytest.approx([r.loss for r in plain.anchor_rows], rel=1e-4)
    assert repaired.summary["repair"] is True


def test_given_networks_and_weights_equal_the_path_at_their_t(digits_endpoints):
    """Repair(endpoints=[(net, weight), ...]) (a merge of N networks) is the path's REPAIR at those weights."""
    a, b = pair(digits_endpoints)
    data = train_batches(2000)
    on_path, _ = walked(a, b, data, 0.25, reset=False)
    merged = on_line(a, b, 0.25)
    repair(merged, [(a, 0.75), (b, 0.25)], data)
    for name, value in on_path.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[name], value, atol=1e-6, rtol=1e-6)


def test_dead_units_are_named_and_left_uncorrected(digits_endpoints):
    a, b = pair(digits_endpoints)
    with torch.no_grad():
        a.layers[1].weight[[3, 7]] = 0.0  # units 3 and 7 of the first layer: constant in network A
    with pytest.warns(RepairWarning, match=r"group 'layers.1' \(layers.1\) has 2 unit\(s\) with zero variance in the path's "
                                           r"network 0 .*units \[3, 7\].*left uncorrected"):
        network, _ = walked(a, b, train_batches(2000), 0.5, reset=False)
    expected = 0.5 * a.layers[1].weight[[3, 7]] + 0.5 * b.layers[1].weight[[3, 7]]
    torch.testing.assert_close(network.layers[1].weight[[3, 7]], expected)
    assert all(bool(torch.isfinite(v).all()) for v in network.state_dict().values())


def test_repair_refuses_networks_it_cannot_correct():
    data = train_batches(2000)

    class Branchy(nn.Module):  # data-dependent control flow: no permutation spec can be traced
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.out = nn.Linear(64, 8), nn.Linear(8, 10)

        def forward(self, x):
            h = self.hidden(x)
            return self.out(h.relu() if h.sum() > 0 else h)

    cases = [(Branchy(), "REPAIR corrects the units of each permutation group, so it needs a permutation spec of Branchy"),
             (nn.Sequential(nn.Linear(64, 10)), "no hidden units to correct"),
             (nn.Sequential(nn.Linear(64, 8), nn.LayerNorm(8, elementwise_affine=False), nn.ReLU(), nn.Linear(8, 10)),
              r"group '0'.* into 1, a LayerNorm without weight and bias \(affine=False\)")]
    for network, message in cases:
        with pytest.raises(LandscapeError, match=message):
            repair(network, [(network, 1.0)], data)
    with pytest.raises(LandscapeError, match="REPAIR needs the networks a point is made of"):
        Repair(data).prepare(nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)), None)


def normalized(kind: str, seed: int) -> nn.Module:
    """A small random network whose hidden layers feed a LayerNorm or a GroupNorm, or have no bias; or a ResNet."""
    torch.manual_seed(seed)
    if kind == "resnet":
        return ResNet(depth=8, width=8, in_channels=1)
    if kind == "groupnorm":
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                             nn.GroupNorm(4, 16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    if kind == "layernorm":
        return nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 32), nn.LayerNorm(32), nn.ReLU(),
                             nn.Linear(32, 10))
    return nn.Sequential(nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Linear(32, 32, bias=False), nn.ReLU(), nn.Linear(32, 10))


@pytest.mark.parametrize("kind", ["layernorm", "groupnorm", "nobias", "resnet"])
def test_repair_folds_into_layer_and_group_norms_and_scales_bias_free_layers(kind):
    """A Linear/Conv feeding a LayerNorm or GroupNorm is measured at the norm's output and corrected through its
    affine, once per channel (a GroupNorm's nested groups are not corrected twice): the units get the mixture's
    mean and std (1e-5) and t = 0 is the first network (1e-6). A bias-free layer gets the std alone, with a warning.
    A ResNet's units are corrected at every conv's BatchNorm, the residual stream's at each conv that writes it."""
    a, b = normalized(kind, 0), normalized(kind, 1)
    data = (images if kind in ("groupnorm", "resnet") else train_batches)(2000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network, fixup = walked(a, b, data, 0.3, reset=False)
        start, _ = walked(a, b, data, 0.0, reset=False)
    bias_free = [str(w.message) for w in caught if issubclass(w.category, RepairWarning) and "no bias" in str(w.message)]
    stats = fixup.statistics
    assert [(s.layer, s.norm, s.shift) for s in stats.sites] == {
        "layernorm": [("0", "1", True), ("3", "4", True)], "groupnorm": [("0", "1", True), ("3", "4", True)],
        "nobias": [("0", None, False), ("2", None, False)],
        "resnet": [("conv1", "bn1", True), *[(f"blocks.{k}.{conv}", f"blocks.{k}.{norm}", True) for k in range(3)
                                              for conv, norm in (("conv1", "bn1"), ("conv2", "bn2"), ("shortcut.0", "shortcut.1"))
                                              if k or conv != "shortcut.0"]]}[kind]
    assert len(bias_free) == (4 if kind == "nobias" else 0)  # per group and walk
    after = measure(network, stats.sites, data)
    for index in range(len(stats.sites)):
        mean, std = stats.target(index, [0.7, 0.3])
        torch.testing.assert_close(after[index].std, std, atol=1e-5, rtol=1e-5)
        if kind == "nobias":  # no bias to move the mean with: it is the point's own, scaled
            assert float((after[index].mean - mean).abs().max()) > 1e-3
        else:
            torch.testing.assert_close(after[index].mean, mean, atol=1e-5, rtol=1e-5)
    for name, value in a.state_dict().items():
        torch.testing.assert_close(start.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)


def test_the_alignment_study_gains_aligned_repair(tmp_path):
    from landscape_pl.recipes import find_config
    from landscape_pl.study.alignment import alignment_stages

    configs = [find_config(f"digits/{name}") for name in ("mlp_deep.yaml", "curve.yaml", "pam.yaml")]
    stages, found = alignment_stages(tmp_path, *configs, [(1, 2)], ["unaligned", "aligned", "aligned_repair"], "activation",
                                     None, None, None, 5, [], "cpu")
    by_name = {s.name: s for s in stages}
    assert "curve_aligned_repair_pair0" not in by_name
    assert by_name["evaluate_aligned_repair_pair0"].depends == ["curve_aligned_pair0"]
    assert by_name["evaluate_aligned_repair_pair0"].inputs == [tmp_path / "curves" / "aligned_pair0" / "lightning_logs" /
                                                               "version_0" / "checkpoints" / "last.ckpt"]
    assert by_name["align_pair0"].settings["repair"] is True
    assert ("aligned_repair", 0) in found.evaluations
    with pytest.raises(LandscapeError, match="add 'aligned' to classes"):
        alignment_stages(tmp_path, *configs, [(1, 2)], ["unaligned", "aligned_repair"], "activation", None, None, None, 5, [], "cpu")


def test_the_study_report_has_an_aligned_repair_row_and_columns(tmp_path):
    from landscape_pl.paths import Row
    from landscape_pl.study.report import write_report

    def result(accuracy: float) -> PathResult:
        rows = [Row(t, split, 0.1, accuracy) for t in (0.0, 0.5, 1.0) for split in ("train", "test")]
        summary = {"training_loss": 0.05, **{s: {"mean_accuracy": accuracy, "min_accuracy": accuracy - 0.1} for s in ("train", "test")}}
        return PathResult(rows, summary)

    evaluations = {("unaligned", 0): result(0.5), ("aligned", 0): result(0.7), ("aligned_repair", 0): result(0.9)}
    barrier = {kind: {"train": 1.0, "test": 1.5} for kind in ("unaligned", "aligned", "aligned_repair")}
    alignments = {0: {"mean_correlation": {"before": 0.1, "after": 0.5}, "barrier": barrier,
                      "midpoint_accuracy": {"unaligned": {"test": 0.2}, "aligned": {"test": 0.6}, "aligned_repair": {"test": 0.8}}}}
    report = write_report(evaluations, tmp_path, alignments)
    assert [row["class"] for row in report["classes"]] == ["unaligned", "aligned", "aligned_repair"]
    assert "REPAIR takes the aligned curves' mean accuracy to 90.00% and their worst point from 60.00% to 80.00%" in report["verdict"]
    tables = (tmp_path / "tables.md").read_text()
    assert "| aligned_repair | 90.00 ± 0.00 % |" in tables and "training loss is the aligned curve's" in tables
    header = (tmp_path / "alignment.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["barrier_aligned_repair_train", "barrier_aligned_repair_test", "midpoint_accuracy_aligned_repair_test"]
    assert math.isclose(float((tmp_path / "alignment.csv").read_text().splitlines()[1].split(",")[-1]), 0.8)


def test_repair_warnings_are_silent_for_healthy_networks(digits_endpoints):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepairWarning)
        walked(*pair(digits_endpoints), train_batches(2000), 0.5, reset=False)


def test_a_pre_layernorm_transformer_folds_nothing_into_its_layernorms():
    """A pre-LN GPT's LayerNorms read the residual sum, never an opening layer's own output: every unit is
    corrected in its layer (a freed output's id, reused by the sum, must not pass for that output)."""
    from landscape_pl.models import GPT
    from landscape_pl.symmetry.repair import find_sites

    torch.manual_seed(0)
    network = GPT(vocab_size=8, context=16, width=32, depth=2, heads=4)
    sites = find_sites(network, torch.randint(0, 8, (8, 16)))
    assert {s.layer for s in sites} == {f"blocks.{k}.{m}" for k in range(2) for m in ("attention.qkv", "attention.proj", "mlp.0", "mlp.2")}
    assert all(s.norm is None for s in sites)
