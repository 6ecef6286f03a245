"""aecore: a learned image compression library (codecs, metrics, rate-distortion, training)."""
__version__ = "0.1.0"
