"""LightningModules: thin wrappers that call paths/ and symmetry/ for the math."""

from landscape_pl.modules.curve import CurveModule
from landscape_pl.modules.endpoint import EndpointModule
from landscape_pl.modules.pam import PAMModule

__all__ = ["CurveModule", "EndpointModule", "PAMModule"]
