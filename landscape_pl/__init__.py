"""landscape_pl: loss landscapes of neural networks with PyTorch Lightning.

``import landscape_pl as lp``, then ``lp.interpolate(a, b, data)``, ``lp.align(a, b, data)``,
``lp.evaluate_curve(curve, data)``, ``lp.plane(networks=[a, b, c], data=data)``,
``lp.connect(a, b, data, threshold=...)``, ``lp.merge([a, b, c, d], data)``, ``lp.trajectory_pca(runs)``,
``lp.export(a, folder)``, ``lp.hessian_spectrum(a, data)``: each returns a result with ``rows``/``summary``, ``.save(folder)`` and ``.plot()``.
"""

from landscape_pl.api import (
    align,
    connect,
    correlation_signatures,
    curve_ensembles,
    curve_point,
    evaluate_curve,
    export,
    hessian_spectrum,
    interpolate,
    merge,
    mli,
    plane,
    trajectory_pca,
)
from landscape_pl.modules import CurveModule, EndpointModule, PAMModule

__all__ = [
    "CurveModule", "EndpointModule", "PAMModule", "align", "connect", "correlation_signatures", "curve_ensembles", "curve_point",
    "evaluate_curve", "export", "hessian_spectrum", "interpolate", "merge", "mli", "plane", "trajectory_pca",
]
__version__ = "0.1.0"
