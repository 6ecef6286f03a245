"""aecore: a learned image compression library (codecs, metrics, rate-distortion, training)."""
import os

__version__ = "0.1.0"

# Before torch loads (it reads this at its first allocation): tensors over 2 MB go on huge pages
# where the kernel allows them (transparent_hugepage "madvise" or "always"). A 12 MP photo's
# transforms allocate gigabytes in tiles; touching that memory 4 KB page by page cost about a
# quarter of a GDN layer's time. Values are unchanged (only where the memory lies).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
