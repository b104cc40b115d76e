"""Where the real datasets of ../shared/data are, for tests that use them.

The data live in ``shared/data`` beside the repository (the repository root is the parent of
tests/, and ``shared`` is its sibling), in CI and in a developer checkout alike. The data is
never copied into the repository (its licences forbid it): a test that needs a file skips with
the reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """``<repository root>/../shared/data`` (whether or not it exists)."""
    return REPO_ROOT.parent / "shared" / "data"


def real_file(rel: str) -> Path:
    """The path of shared/data/REL, or skip the calling test with a clear reason."""
    p = shared_data() / rel
    if not p.is_file():
        pytest.skip(f"real dataset {rel} not available at {p} (expected in shared/data beside "
                    f"the repository; its licence forbids shipping it with the repository)")
    return p
