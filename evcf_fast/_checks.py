"""The one home of argument checks: every message reads "NAME must be EXPECTED, got GOT".

Library functions call these at their edge (STYLE 10.4/10.5) so that a wrong type or value is
reported the same way wherever it enters: the argument's name, what was expected and what came.
``bool`` is rejected where an int or float is expected because ``True`` silently passing as ``1``
is how a flag typo turns into a wrong number.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable


def type_name(value) -> str:
    """What a message calls the type of ``value``: ``int``, ``str``, ``NoneType``..."""
    return type(value).__name__


def must_be(name: str, expected: str, got) -> str:
    """The message template: ``NAME must be EXPECTED, got GOT``."""
    return f"{name} must be {expected}, got {got}"


def is_int(value) -> bool:
    """True for Python and NumPy integers, False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """True for ints and floats (Python or NumPy), False for bools and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]``; TypeError/ValueError otherwise."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        expected = "an int or None" if allow_none else "an int"
        raise TypeError(must_be(name, expected, type_name(value)))
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValueError(must_be(name, f"in [{minimum}, {maximum}]", value))
    if minimum is not None and value < minimum:
        raise ValueError(must_be(name, f">= {minimum}", value))
    if maximum is not None and value > maximum:
        raise ValueError(must_be(name, f"<= {maximum}", value))
    return int(value)


def check_float(value, name: str, *, minimum: float | None = None, positive: bool = False,
                allow_none: bool = False) -> float | None:
    """``value`` as a finite ``float``, optionally ``>= minimum`` or ``> 0``."""
    if value is None and allow_none:
        return None
    if not is_real(value):
        raise TypeError(must_be(name, "a float", type_name(value)))
    value = float(value)
    if positive:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(must_be(name, "finite and > 0", value))
    elif minimum is not None:
        if not (math.isfinite(value) and value >= minimum):
            raise ValueError(must_be(name, f"finite and >= {minimum:g}", value))
    elif not math.isfinite(value):
        raise ValueError(must_be(name, "finite", value))
    return value


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; the message lists them from the registry itself."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(must_be(name, f"one of {choices}", repr(value)))
    return value


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        shown = f"{value!r} ({type_name(value)})" if isinstance(value, (str, int, float)) \
            else type_name(value)
        raise TypeError(must_be(name, "a bool (true or false)", shown))
    return value
