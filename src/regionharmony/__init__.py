"""Image harmonization with region-wise contrastive learning.

``regionharmony.harmonize(composite, mask, model)`` harmonises one composite at its full
resolution (see `regionharmony.inference.harmonize`). It is loaded on first use, so
``import regionharmony``
stays light (no torch).
"""

from __future__ import annotations

from typing import Any

from regionharmony.cpu_threads import configure_cpu_threads

# before anything imports torch: libgomp reads OMP_* once, when it is loaded (see cpu_threads)
configure_cpu_threads()

__all__ = ["harmonize"]


def __getattr__(name: str) -> Any:
    if name == "harmonize":
        from regionharmony.inference.harmonize import harmonize

        return harmonize
    raise AttributeError(f"module 'regionharmony' has no attribute {name!r}")
