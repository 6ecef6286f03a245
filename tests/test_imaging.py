"""Pictures for showing: error heatmaps on one shared scale, the colour bar, scaled copies."""
import numpy as np
import pytest

from aecore import imaging


def test_error_map_shape_dtype_and_shared_scale(photo):
    noisy = np.clip(photo.astype(int) + 20, 0, 255).astype(np.uint8)
    worse = np.clip(photo.astype(int) + 40, 0, 255).astype(np.uint8)
    vmax = imaging.error_scale(photo, [noisy, worse])
    assert vmax == 40
    heat_a, heat_b = imaging.error_map(photo, noisy, vmax), imaging.error_map(photo, worse, vmax)
    assert heat_a.shape == photo.shape and heat_a.dtype == np.uint8
    # Same scale: the larger error is brighter, and exact pixels get the colour of zero.
    assert heat_b.astype(int).sum() > heat_a.astype(int).sum()
    zero = imaging.error_map(photo, photo, vmax)
    assert np.all(zero == zero[0, 0]) and np.array_equal(zero[0, 0], imaging.error_legend(8, 1)[0, 0])
    unclipped = photo.max(axis=2) <= 215  # there the error is exactly 40 levels: the top colour
    assert unclipped.any() and np.all(heat_b[unclipped] == imaging.error_legend(256, 1)[0, -1])
    gray = imaging.error_map(photo[..., 0], noisy[..., 0], 10)
    assert gray.shape == photo.shape[:2] + (3,)
    with pytest.raises(ValueError):
        imaging.error_map(photo, photo[:10], vmax)


def test_preview_and_shrink_keep_small_images_and_bound_large_ones(photo):
    assert imaging.preview(photo, 1600) is photo
    small = imaging.preview(photo, 64)
    assert max(small.shape[:2]) == 64 and small.dtype == np.uint8 and small.shape[2] == 3
    assert imaging.shrink_to_pixels(photo, 10**6) is photo
    shrunk = imaging.shrink_to_pixels(photo, 3000)
    assert shrunk.shape[0] * shrunk.shape[1] <= 3000


def test_one_inferno_colour_map_for_error_maps_and_the_bits_heatmap(photo):
    # Inferno's published end and middle colours (#000004, #bc3754, #fcffa4).
    assert imaging.error_legend(3, 1)[0].tolist() == [[0, 0, 4], [188, 55, 84], [252, 255, 164]]
    from aecore import latents
    bits = np.tile(np.linspace(0, 4, photo.shape[1], dtype=np.float32), (photo.shape[0], 1))
    heat = latents.overlay(photo, bits, alpha=1.0, vmax=4.0)  # the photo's weight is 0: the map alone
    assert np.array_equal(heat, imaging.colorize(bits / 4.0))
    assert np.array_equal(heat[0, -1], imaging.error_legend(2, 1)[0, -1])
