"""One measurement, as the Compare page, rd sweeps and the command line report it."""
import itertools

import numpy as np

from aecore import rd
from aecore.codecs import get_codec
from aecore.measure import measure
from aecore.metrics import evaluate


def _ticking(step: float):
    """A clock that advances `step` seconds per reading: timings come out exact, whatever the machine."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_a_measurement_decodes_its_own_file_and_scores_that_decode(photo):
    jpeg = get_codec("jpeg")
    m = measure(jpeg, photo, 40, clock=_ticking(0.25))
    assert m.data == jpeg.encode(photo, 40) and np.array_equal(m.decoded, jpeg.decode(m.data))
    assert m.metrics == evaluate(photo, m.decoded, len(m.data))
    assert (m.num_bytes, m.bpp) == (len(m.data), 8 * len(m.data) / (photo.shape[0] * photo.shape[1]))
    assert (m.psnr, m.ms_ssim, m.blockiness) == (m.metrics["psnr"], m.metrics["ms_ssim"], m.metrics["blockiness"])
    assert (m.encode_s, m.decode_s, m.encode_ms) == (0.25, 0.25, 250.0)


def test_a_file_from_a_search_is_what_gets_decoded(photo):
    jpeg = get_codec("jpeg")
    found = jpeg.encode(photo, 10)
    m = measure(jpeg, photo, 10, data=found, perceptual=False)
    assert m.data is found and np.isnan(m.metrics["ssimulacra2"])


def test_sweep_rows_carry_the_measurement(photo):
    row, = rd.sweep({"p": photo}, {"webp": [30]}, perceptual=False)
    m = measure(get_codec("webp"), photo, 30, perceptual=False)
    assert {k: row[k] for k in rd.METRICS} == {k: m.metrics[k] for k in rd.METRICS}
