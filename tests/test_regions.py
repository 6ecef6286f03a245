"""The automatic zoom (aecore.regions): it must find the spot that was made worse, on the 8x8 grid."""
import numpy as np
import pytest

from aecore import regions
from aecore.metrics import blockiness


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (120, 160, 3)).astype(np.uint8)
    import cv2
    return cv2.GaussianBlur(base, (0, 0), 3)  # smooth, like a photo's sky


def noisy(pixels, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(pixels + rng.normal(0, sigma, pixels.shape), 0, 255).astype(np.uint8)


def test_worst_region_finds_where_theirs_is_worse(scene):
    ours = noisy(scene, 2, 1)
    theirs = noisy(scene, 2, 2)
    theirs[48:80, 88:120] = noisy(scene, 25, 3)[48:80, 88:120]  # a 32 px patch made much worse
    box = regions.worst_region(scene, ours, theirs, size=32)
    assert (box.y, box.x, box.size) == (48, 88, 32)
    assert box.score > 100  # mean squared-error gap: about 25^2 minus 2^2
    # Swapped, their patch is where ours is best by the most, so the worst spot for them lies elsewhere.
    assert regions.worst_region(scene, theirs, ours, size=32).score < box.score


def test_block_grid_region_finds_the_blocky_patch(scene):
    theirs = scene.copy()
    patch = theirs[16:64, 40:104].astype(np.float64)
    blocks = patch.reshape(6, 8, 8, 8, 3).mean(axis=(1, 3), keepdims=True)  # each 8x8 block flattened
    theirs[16:64, 40:104] = np.broadcast_to(blocks, (6, 8, 8, 8, 3)).reshape(48, 64, 3).round().astype(np.uint8)
    box = regions.block_grid_region(scene, theirs, size=32)
    assert 16 <= box.y <= 32 and 40 <= box.x <= 72 and box.y % 8 == 0 and box.x % 8 == 0
    assert blockiness(box.crop(theirs)) > 1.5 * blockiness(box.crop(scene))
    words = regions.grid_words(scene, scene, theirs, box, "ours")
    assert "8×8-pixel squares" in words and "ours codes the picture as a whole" in words
    calm = regions.grid_words(scene, scene, scene, box, "ours")
    assert calm.startswith("No clear 8×8 grid here")


def test_a_picture_without_a_grid_scores_near_zero(scene):
    strength = regions.grid_strength(scene)
    assert abs(strength[:112, :152].mean()) < 0.05 * np.abs(np.diff(scene.mean(axis=2), axis=1)).mean()


def test_crops_fit_small_images_and_refuse_mismatches(scene):
    assert regions.crop_side((120, 160), 128) == 120
    assert regions.crop_side((61, 200), 128) == 56
    assert regions.crop_side((5, 9), 128) == 5
    tiny = scene[:5, :9]
    box = regions.worst_region(tiny, tiny, tiny, size=128)
    assert (box.y, box.x, box.size) == (0, 0, 5)
    with pytest.raises(ValueError, match="differ in shape"):
        regions.worst_region(scene, scene[:64], scene)
    with pytest.raises(ValueError, match="differ in shape"):
        regions.block_grid_region(scene, scene[:, :64])
