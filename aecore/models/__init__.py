"""Learned architectures: layers, entropy models and the registered models."""
from .base import LAMBDAS, MODELS, CompressionModel, ModelConfig, build_model, register_model
from . import hyperprior, seed  # noqa: F401  (registers the architectures)

__all__ = ["LAMBDAS", "MODELS", "CompressionModel", "ModelConfig", "build_model", "register_model"]
