"""One place that decides how progress bars look (tqdm on stderr).

Bars are drawn only where they can be seen redrawing: a terminal, or a Jupyter kernel. Under
``nohup``, in a pipe or a log file a bar would collapse into one long line of carriage returns,
so there it is silent (the trainer prints one plain line per epoch instead).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


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
    return tqdm(iterable, total=total, desc=desc, unit=unit,
                disable=not (enabled and bars_visible()), unit_scale=unit_scale, leave=False,
                dynamic_ncols=True)
