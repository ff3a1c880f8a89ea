"""Lightning callbacks: what a training run records besides its checkpoints."""

from landscape_pl.callbacks.path_evaluation import PathEvaluation
from landscape_pl.callbacks.spawn import SpawnCheckpoints
from landscape_pl.callbacks.trajectory import TrajectoryRecorder

__all__ = ["PathEvaluation", "SpawnCheckpoints", "TrajectoryRecorder"]
