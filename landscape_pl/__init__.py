"""landscape_pl: loss landscapes of neural networks with PyTorch Lightning."""

from landscape_pl.modules import CurveModule, EndpointModule, PAMModule

__all__ = ["CurveModule", "EndpointModule", "PAMModule"]
__version__ = "0.1.0"
