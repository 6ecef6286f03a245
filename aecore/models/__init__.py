"""Learned architectures: layers, entropy models and the registered models."""
from .base import LAMBDAS, MODELS, lambda_ladder, CompressionModel, ModelConfig, build_model, register_model
from . import hyperprior, seed  # noqa: F401  (registers the architectures)

__all__ = ["LAMBDAS", "lambda_ladder", "MODELS", "CompressionModel", "ModelConfig", "build_model", "register_model"]
