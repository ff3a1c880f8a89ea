"""Architectures, each an ordinary ``nn.Module`` that records the spec that rebuilds it."""

from landscape_pl.models.base import Architecture, build, describe
from landscape_pl.models.cnn import SimpleCNN, TinyNet, TinySix, TinyTen
from landscape_pl.models.gpt import GPT
from landscape_pl.models.mlp import MLP
from landscape_pl.models.resnet import ResNet
from landscape_pl.models.vgg import VGG, VGG16BN

__all__ = ["Architecture", "GPT", "MLP", "ResNet", "SimpleCNN", "TinyNet", "TinySix", "TinyTen", "VGG", "VGG16BN", "build", "describe"]
