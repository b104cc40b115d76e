"""One place that decides how progress bars look (tqdm on stderr).

Bars are drawn only where they can be seen redrawing: a terminal, or a Jupyter kernel. Under
``nohup``, in a pipe or a log file a bar would collapse into one long line of carriage returns,
so there it is silent (the trainer prints one plain line per epoch instead). tqdm is imported only
for a bar that will be drawn (``tqdm.auto`` costs about 50 ms, a noticeable share of a quick
``evcf prepare``).
"""

from __future__ import annotations

import sys


def bars_visible() -> bool:
    """True when stderr is a terminal or the code runs in a Jupyter kernel."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", enabled: bool = True,
             unit_scale: bool = False):
    """A tqdm bar, or a silent pass-through when ``enabled`` is false (``--quiet``) or nobody
    can see it redraw (:func:`bars_visible`)."""
    if not (enabled and bars_visible()):
        return _Silent(iterable)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False,
                dynamic_ncols=True)


class _Silent:
    """What a disabled tqdm bar does (nothing), without importing tqdm."""

    def __init__(self, iterable=None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __len__(self):
        return len(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_description(self, desc=None, refresh=True):
        pass

    def close(self):
        pass
