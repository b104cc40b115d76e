"""Config dataclasses to and from plain dicts (STYLE 10.6): what checkpoints and config.json hold.

``to_plain`` turns ``dataclasses.asdict`` output into JSON-able, ``weights_only``-loadable values
(tuples become lists); ``dataclass_from_dict`` is its inverse for any frozen config dataclass.
An unknown key is an error, and so is a value whose type does not fit the field's annotation;
both name the field. Range and choice checks stay in the dataclass's own ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from ._checks import is_int, is_real, must_be, type_name


def to_plain(value):
    """Tuples to lists, recursively, so configs are JSON-able and weights_only-loadable."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def dataclass_from_dict(cls, d: dict):
    """Build the config dataclass ``cls`` from a plain dict (lists back to tuples).

    Raises
    ------
    ValueError
        If ``d`` has keys that are not fields of ``cls``.
    TypeError
        If a value does not fit its field's annotation (``int``, ``float``, ``str``, ``bool``,
        ``tuple[...]``, optionally ``| None``); the message names the field.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; "
                         f"expected some of {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in d.items():
        _check_type(key, value, hints[key])
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


_SCALARS = {int: (is_int, "an int"), float: (is_real, "a float"),
            bool: (lambda v: isinstance(v, bool), "a bool"),
            str: (lambda v: isinstance(v, str), "a str")}


def _check_type(name: str, value, hint) -> None:
    """TypeError naming ``name`` unless ``value`` fits the annotation ``hint``."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
        typing.get_origin(hint) is typing.Union else (hint,)
    if value is None and type(None) in options:
        return
    expected = []
    for option in options:
        if option is type(None):
            expected.append("None")
        elif option in _SCALARS:
            fits, what = _SCALARS[option]
            if fits(value):
                return
            expected.append(what)
        elif typing.get_origin(option) is tuple:
            if isinstance(value, (list, tuple)):
                return
            expected.append("a list")
        else:  # an annotation this helper does not model: leave it to __post_init__
            return
    raise TypeError(must_be(name, " or ".join(expected), type_name(value)))


class ConfigMixin:
    """``to_dict``/``from_dict`` and the frozen-field setter every config dataclass shares."""

    def _set(self, name: str, value) -> None:
        """Store a checked, normalised value on a frozen dataclass (from ``__post_init__``)."""
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists), as checkpoints and config.json store it."""
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict`; unknown keys and type mismatches are errors naming them."""
        return dataclass_from_dict(cls, d)


def read_toml(path, *, what: str = "") -> dict:
    """The TOML file ``path`` as a dict; a ValueError naming the file (and ``what`` reads it)
    with the parser's position otherwise. Python 3.10 needs the ``tomli`` backport."""
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(f"{what}{path}: reading TOML needs Python >= 3.11 or the tomli "
                             f"package (pip install tomli), or use a JSON file") from None
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{what}{path}: not valid TOML ({exc})") from None
