"""Training settings from a file (``evcf train --config FILE``) and from several sources at once.

A config file is TOML or JSON and holds either

* flat fields: ``{"preset": "evcf-baseline", "data": "data/ml20m", "epochs": 50,
  "hidden_size": 300}`` (any ModelConfig or TrainConfig field, plus ``preset`` and ``data``), or
* the layout of a run folder's ``config.json``: ``model_config`` and ``train_config`` tables
  (``[model_config]`` / ``[train_config]`` in TOML), optionally ``data`` and ``dataset`` (the
  dataset fingerprint, ignored here: ``--resume`` checks it).

So ``evcf train --config runs/a/config.json --out runs/b`` reproduces run ``a``, and any flag
varies it. :func:`merge_sources` combines the settings of several named sources (the file,
``--set``, the flags); a field given by two of them with different values is an error naming both.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._checks import must_be, type_name

# keys of a config file that are not config fields
FILE_KEYS = ("preset", "data")
# tables of a run folder's config.json
SECTIONS = ("model_config", "train_config")
IGNORED = ("dataset",)


def read_config_file(path) -> dict:
    """The settings of a TOML or JSON config file as one flat dict.

    Returns
    -------
    dict
        Field -> value, plus ``preset`` and ``data`` when the file gives them. ``n_items`` of a
        run's model_config is kept (it is checked against the dataset).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unreadable TOML/JSON (with the parser's line), a top level that is not a table, or a
        field given twice (flat and inside a section).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        from .._config import read_toml

        raw = read_toml(path, what="--config ")
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {path}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                             f"column {exc.colno} (TOML files need the .toml suffix)") from None
    if not isinstance(raw, dict):
        raise ValueError(must_be(f"--config {path}", "a table of settings (JSON object)",
                                 type_name(raw)))
    flat: dict = {}
    where: dict = {}
    for key, value in raw.items():
        if key in IGNORED:
            continue
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(must_be(f"--config {path}: {key}", "a table",
                                         type_name(value)))
            items = [(k, v, f"{key}.{k}") for k, v in value.items()]
        else:
            items = [(key, value, key)]
        for k, v, name in items:
            k = k.replace("-", "_")
            if k in flat and flat[k] != v:
                raise ValueError(f"--config {path}: {k!r} is given twice, as {where[k]} = "
                                 f"{flat[k]!r} and as {name} = {v!r}")
            flat[k], where[k] = v, name
    return flat


def merge_sources(*sources: tuple[str, dict]) -> dict:
    """Merge ``(source name, {field: value})`` pairs; a field set to two values is an error.

    Equal values from several sources are fine. The error names both sources, for example
    ``epochs is set twice: 5 by --set epochs=5 and 7 by --epochs``.
    """
    merged: dict = {}
    origin: dict = {}
    for name, values in sources:
        for key, value in values.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"{key} is set twice: {merged[key]!r} by {origin[key]} and "
                                 f"{value!r} by {name}; give it once")
            if key not in merged:
                merged[key], origin[key] = value, name
    return merged


def layer(base: dict, top: dict) -> dict:
    """``base`` with ``top``'s values on top (the command line over a config file)."""
    return {**base, **top}
