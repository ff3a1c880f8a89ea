"""Parameters as functions of t (or of plane coordinates), and their evaluation."""

from landscape_pl.paths.anchors import Anchors, NetworkSlots
from landscape_pl.paths.batchnorm import has_batchnorm, recompute_batchnorm
from landscape_pl.paths.evaluate import Evaluation, Row, evaluate
from landscape_pl.paths.path import Line, Path, line, select_names

__all__ = ["Anchors", "Evaluation", "Line", "NetworkSlots", "Path", "Row", "evaluate", "has_batchnorm", "line", "recompute_batchnorm", "select_names"]
