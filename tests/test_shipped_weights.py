"""The trained weights in weights/: they load from safetensors + card and code real images."""
import json

import numpy as np
import pytest

from tests.conftest import file_sha256
from aecore import weights
from aecore.codecs import get_codec
from aecore.metrics import psnr

pytestmark = pytest.mark.shipped


@pytest.mark.parametrize("name, arch", [("hyperprior", "hyperprior"), ("seed", "seed-hyperprior")])
def test_shipped_weights_code_a_photo(name, arch, photo):
    path = weights.SHIPPED_DIR / f"{name}.safetensors"
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == file_sha256(path)  # the card describes exactly this file
    assert card["config"]["arch"] == arch and card["training"]["steps"] > 0
    assert path.stat().st_size < 25 * 1024 * 1024
    codec = get_codec(name)
    low, high = codec.encode(photo, 1.0), codec.encode(photo, 8.0)
    assert len(low) < len(high)  # the quality knob moves the rate
    decoded = codec.decode(high)
    assert decoded.shape == photo.shape and np.array_equal(decoded, codec.decode(high))
    assert psnr(photo, decoded) > psnr(photo, codec.decode(low))
