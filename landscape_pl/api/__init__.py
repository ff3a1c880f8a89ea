"""The library: every analysis as a function on networks (nn.Modules or checkpoints) and data
(a LandscapeDataModule or plain DataLoaders), returning a Result with ``rows``/``summary``,
``.save(folder)`` (the files the matching command writes) and ``.plot()`` (a matplotlib figure).
"""

from landscape_pl.api.alignment import AlignmentResult, SignatureResult, align, correlation_signatures
from landscape_pl.api.curves import EnsembleResult, curve_ensembles, curve_point, evaluate_curve
from landscape_pl.api.export import export
from landscape_pl.api.hessian import SpectrumResult, hessian_spectrum
from landscape_pl.api.lines import PathResult, interpolate
from landscape_pl.api.merge import MergeResult, merge
from landscape_pl.api.mli import MLIResult, mli
from landscape_pl.api.planes import PlaneResult, plane
from landscape_pl.api.result import Result
from landscape_pl.api.strings import StringResult, connect
from landscape_pl.api.trajectories import TrajectoryResult, trajectory_pca

__all__ = [
    "AlignmentResult", "EnsembleResult", "MLIResult", "MergeResult", "PathResult", "PlaneResult", "Result", "SignatureResult",
    "SpectrumResult", "StringResult",
    "TrajectoryResult", "align", "connect", "correlation_signatures", "curve_ensembles", "curve_point", "evaluate_curve", "export",
    "hessian_spectrum", "interpolate", "merge", "mli", "plane", "trajectory_pca",
]
