"""Where the real datasets of ../shared/data are, for tests that use them.

CI clones the repository into a folder beside a copy of shared/; a developer checkout may sit
elsewhere, so /work/shared/data is the fallback. The data is never copied into the repository
(its licences forbid it): a test that needs a file skips with the reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_data() -> Path:
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    return here if here.is_dir() else Path("/work/shared/data")


def real_file(rel: str) -> Path:
    """The path of shared/data/REL, or skip the calling test with a clear reason."""
    p = shared_data() / rel
    if not p.is_file():
        pytest.skip(f"real dataset {rel} not available under {shared_data()} (its licence "
                    f"forbids shipping it with the repository)")
    return p
