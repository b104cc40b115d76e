"""One place that decides how progress bars look (tqdm on stderr)."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", enabled: bool = True,
             unit_scale: bool = False):
    """A tqdm bar, or a silent pass-through when ``enabled`` is false (``--quiet``)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled,
                unit_scale=unit_scale, leave=False, dynamic_ncols=True)
