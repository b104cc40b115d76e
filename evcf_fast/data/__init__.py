"""The data engine: raw interaction logs -> the exact strong-generalization split on disk.

Modules (imported on demand, so ``import evcf_fast.data`` stays light):

* ``config``    ``SplitConfig``: the split's parameters and the one home of their defaults
* ``readers``   MovieLens, Netflix Prize, CSV/TSV/Parquet and the authors' pre-split files
* ``split``     the Liang et al. / EVCF split (PAPER_SPEC 1.1), identical to the notebook
* ``pipeline``  ``prepare()``: files in, dataset directory out
* ``dataset``   ``SplitDataset``: CSR matrices, id maps, metadata; save / memory-mapped load
* ``synthetic`` seeded ML-20M- and Netflix-shaped data and the small demo set
* ``export``    the authors' CSV layout
"""

from .config import SplitConfig

__all__ = ["SplitConfig"]
