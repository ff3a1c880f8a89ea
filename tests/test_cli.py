"""The one command line: Lightning's subcommands, help, configs, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, command_of, fit

from landscape_pl.data import DigitsDataModule
from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.io import read_checkpoint

DIGITS = ["--data", "landscape_pl.data.DigitsDataModule"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
ALL_CONFIGS = sorted(CONFIGS.glob("*/*.yaml"))


def cli(*argv: str) -> LandscapeCLI:
    return LandscapeCLI(args=model_from_checkpoint(list(argv)))


def test_help_lists_commands_models_and_data(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "interpolate", "lines"):
        assert f"  {name} " in out
    for name in ("MLP", "SimpleCNN", "TinySix", "TinyTen", "VGG16BN", "ResNet", "DigitsDataModule",
                 "VisionDataModule", "PolynomialDataModule", "CyclicPermutationDataModule", "EndpointModule"):
        assert name in out
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "landscape_pl.models.TinyTen" in out and "landscape_pl.data.VisionDataModule" in out and "--ckpt_path" in out


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in ALL_CONFIGS])
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command_of(config), "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed, source = yaml.safe_load(capsys.readouterr().out), yaml.safe_load(config.read_text())
    for key, value in source.items():  # every top-level choice survives parsing
        if isinstance(value, dict) and "class_path" in value:
            assert printed[key]["class_path"].endswith(value["class_path"].split(".")[-1]), key
        elif not isinstance(value, (dict, list)):
            assert printed[key] == value, key


PAPER_SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}


def printed(capsys, config: Path) -> dict:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config), "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["tinysix", "tinyten", "resnet32", "vgg16bn", "curve", "pam"])
def test_cifar_recipes_are_the_papers(capsys, name):
    """Section 4.1 and appendix B: SGD lr 0.1 halved every 20 epochs, weight decay 5e-4; 250 epochs for
    endpoints, 200 for curves, PAM 4 iterations of 20 permutation + 40 curve epochs."""
    config = printed(capsys, CONFIGS / "cifar10" / f"{name}.yaml")
    model = config["model"]["init_args"]
    optimizer = model["optimizer"]
    assert optimizer["class_path"] == "torch.optim.SGD"
    assert {k: optimizer["init_args"][k] for k in PAPER_SGD} == PAPER_SGD
    if name == "pam":  # PAM halves its learning rates at every outer iteration instead of a StepLR
        assert (model["iterations"], model["permutation_epochs"], model["curve_epochs"], model["anneal"]) == (4, 20, 40, 0.5)
    else:
        schedule = model["lr_scheduler"]
        assert schedule["class_path"] == "torch.optim.lr_scheduler.StepLR"
        assert {k: schedule["init_args"][k] for k in ("step_size", "gamma")} == {"step_size": 20, "gamma": 0.5}
    assert config["trainer"]["max_epochs"] == {"curve": 200, "pam": 4 * (20 + 40)}.get(name, 250)


ALIGNMENT_STUDIES = [CONFIGS / "studies" / f"{net}_{data}.yaml" for net in ("tinysix", "tinyten", "resnet32", "vgg16bn")
                     for data in ("cifar10", "cifar100", "stl10")]


@pytest.mark.parametrize("study", ALIGNMENT_STUDIES, ids=lambda p: p.stem)
def test_alignment_studies_train_the_papers_number_of_models(study):
    """12, 6 and 6 models (6, 3 and 3 pairs) for CIFAR10, CIFAR100 and STL10; VGG16-BN has no PAM curves."""
    config = yaml.safe_load(study.read_text())
    pairs = [tuple(p) for p in config["pairs"]]
    assert len(pairs) == (6 if study.stem.endswith("cifar10") else 3) and len({s for p in pairs for s in p}) == 2 * len(pairs)
    pam = {"pam_unaligned", "pam_aligned"} & set(config["classes"])
    assert (not pam) == study.stem.startswith("vgg16bn")


# The digits endpoint recipes (curve configs need trained endpoints and are their module's to test).
DIGITS_CONFIGS = [p for p in sorted((CONFIGS / "digits").glob("*.yaml"))
                  if "EndpointModule" in yaml.safe_load(p.read_text())["model"]["class_path"]]


@pytest.mark.parametrize("config", DIGITS_CONFIGS, ids=[p.name for p in DIGITS_CONFIGS])
def test_digits_configs_run_one_epoch(config, tmp_path):
    run = fit(config, tmp_path, 1, 1, "--trainer.limit_train_batches=4")
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 4)  # Lightning stamps an epoch's checkpoint with its 0-based index
    assert read_checkpoint(run / "checkpoints" / "init.ckpt")["global_step"] == 0
    assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))


def test_fit_resumes_from_last(digits_endpoints, tmp_path):
    """One epoch, interrupted, then ``--ckpt_path last`` to two: the same run folder, the initialization
    kept, and exactly the weights of the uninterrupted two-epoch run (seed 1) of the fixture."""
    run = fit(digits_endpoints.config, tmp_path, 1, 1)
    init_bytes = (run / "checkpoints" / "init.ckpt").read_bytes()
    resumed = fit(digits_endpoints.config, tmp_path, 1, 2, "--ckpt_path", "last")
    assert resumed == run
    assert (run / "checkpoints" / "init.ckpt").read_bytes() == init_bytes
    last, reference = read_checkpoint(run / "checkpoints" / "last.ckpt"), read_checkpoint(digits_endpoints.a)
    assert (last["epoch"], last["global_step"]) == (reference["epoch"], reference["global_step"]) == (1, 46)
    for name, value in reference["state_dict"].items():
        assert torch.equal(last["state_dict"][name], value), name


def test_resume_without_a_run_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "digits" / "mlp.yaml"), f"--trainer.default_root_dir={tmp_path}",
              "--ckpt_path", "last"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and str(tmp_path) in err and "Traceback" not in err


def test_validate_test_predict_from_a_checkpoint(digits_endpoints):
    ckpt = str(digits_endpoints.a)
    validated = cli("validate", "--ckpt_path", ckpt, *DIGITS, *QUIET).trainer.callback_metrics
    tested = cli("test", "--ckpt_path", ckpt, *DIGITS, *QUIET).trainer.callback_metrics
    assert float(tested["test/loss"]) == pytest.approx(float(validated["val/loss"]), rel=1e-6)
    assert float(tested["test/accuracy"]) == float(validated["val/accuracy"]) > 0.5
    predicted = cli("predict", "--ckpt_path", ckpt, *DIGITS, *QUIET).trainer.predict_loop.predictions
    logits = torch.cat(predicted)
    labels = torch.cat([y for _, y in DigitsDataModule().eval_dataloader("test")])
    assert logits.shape == (len(labels), 10) == (359, 10)
    assert (logits.argmax(1) == labels).float().mean().item() == pytest.approx(float(validated["val/accuracy"]))


def test_validate_through_main_prints_metrics(digits_endpoints, capsys):
    main(["validate", "--ckpt_path", str(digits_endpoints.b), *DIGITS, *QUIET])
    out = capsys.readouterr().out
    assert "val/loss" in out and "val/accuracy" in out


def test_training_logs_loss_accuracy_and_learning_rate(digits_endpoints):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = Path(digits_endpoints.run_a).glob("events.out.tfevents.*")
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"train/loss_step", "train/loss_epoch", "train/accuracy_epoch", "val/loss", "val/accuracy", "lr"} <= tags
