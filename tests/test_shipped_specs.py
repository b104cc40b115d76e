"""The study and sweep files shipped in tools/studies/ parse and name only real fields, so that
the commands the README gives for them fail on nothing but the missing data."""

from __future__ import annotations

from pathlib import Path

import pytest

from evcf_fast._config import read_toml
from evcf_fast.train.study import StudySpec
from evcf_fast.train.sweep import SweepSpec

SPECS = sorted((Path(__file__).resolve().parents[1] / "tools" / "studies").glob("*.toml"))


def test_there_are_shipped_specs():
    names = {p.name for p in SPECS}
    assert {"ml1m.toml", "citeulike.toml", "multvae.toml", "hvamp.toml",
            "hvamp-cpu.toml"} <= names


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_a_shipped_spec_loads(path):
    if "rows" in read_toml(path):
        study = StudySpec.load(path)
        for row in study.rows:
            if row.sweep is not None:
                assert row.sweep.exists(), f"{path.name}: {row.name!r} names {row.sweep}"
                SweepSpec.load(row.sweep)
    else:
        spec = SweepSpec.load(path)
        assert spec.params or spec.fixed
