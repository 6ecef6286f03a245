"""The error classes every layer raises, on the ground floor: this module imports nothing.

Each is a ValueError, so a caller that only cares about "bad input" catches one class; the
command line and the pages turn them into one-line messages.
"""


class CodecError(ValueError):
    """A stream that cannot be decoded, or an input a codec cannot encode."""


class BitstreamError(CodecError):
    """An .aec stream that is truncated, altered, or not an .aec stream at all."""


class WeightsError(ValueError):
    """Weights that are missing, malformed or do not match their card."""


class ImageError(ValueError):
    """Input that is not a usable image; the message names the file and the problem."""
