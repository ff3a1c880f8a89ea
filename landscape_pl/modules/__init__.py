"""LightningModules: thin wrappers that call paths/ and symmetry/ for the math."""

from landscape_pl.modules.curve import CurveModule
from landscape_pl.modules.endpoint import EndpointModule

__all__ = ["CurveModule", "EndpointModule"]
