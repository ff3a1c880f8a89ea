"""LightningDataModules: the bundled digits, MNIST-1D (generated locally), torchvision image sets and the papers' synthetic tasks."""

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.digits import DigitsDataModule
from landscape_pl.data.mnist1d import MNIST1DDataModule
from landscape_pl.data.synthetic import CyclicPermutationDataModule, PolynomialDataModule
from landscape_pl.data.tokens import TokensDataModule
from landscape_pl.data.vision import VisionDataModule

__all__ = [
    "CyclicPermutationDataModule", "DigitsDataModule", "LandscapeDataModule", "MNIST1DDataModule", "PolynomialDataModule",
    "TokensDataModule", "VisionDataModule",
]
