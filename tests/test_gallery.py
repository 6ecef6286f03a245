"""The gallery's rules (aecore.gallery): budgets, the walk, the key numbers and the headline."""
import pytest

from aecore import gallery, report

from .test_compare import smooth  # noqa: F401  (a fixture)


def test_budgets_and_the_walk():
    assert gallery.target_for("25 KB").bytes_for((512, 512)) == 25_000
    assert gallery.target_for(gallery.BPP, 0.5).bytes_for((512, 512)) == 16_384
    with pytest.raises(ValueError, match="unknown budget"):
        gallery.target_for("7 KB")
    assert [gallery.step(i, +1, 3) for i in range(3)] == [1, 2, 0]
    assert gallery.step(0, -1, 3) == 2
    with pytest.raises(ValueError):
        gallery.step(0, 1, 0)


def test_key_numbers_and_headline_state_the_measured_values(user_weights, smooth):  # noqa: F811
    item = report.make_item("p", smooth, "tiny-seed", report.Target(budget=2000))
    numbers = {label: (value, detail) for label, value, detail in gallery.key_numbers(item)}
    a, b = item.learned.metrics, item.jpeg.metrics
    assert numbers["File size"][0] == f"{item.learned.num_bytes / 1000:.1f} KB"
    assert numbers["PSNR"] == (f"{a['psnr']:.1f} dB", f"{a['psnr'] - b['psnr']:+.1f} dB against JPEG's {b['psnr']:.1f} dB")
    assert numbers["Block grid"][1] == f"JPEG {b['blockiness']:.2f} (1 = none)"
    gain = a["psnr"] - b["psnr"]
    word = "better" if gain > 0 else "worse"
    assert gallery.headline(item) == f"Learned: {abs(gain):.1f} dB {word} than JPEG at {item.learned.num_bytes / 1000:.1f} KB"
