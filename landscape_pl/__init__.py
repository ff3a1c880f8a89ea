"""landscape_pl: loss landscapes of neural networks with PyTorch Lightning."""

from landscape_pl.modules import CurveModule, EndpointModule

__all__ = ["CurveModule", "EndpointModule"]
__version__ = "0.1.0"
