"""``python -m evcf_fast ...`` runs the ``evcf`` command line (also under ``torchrun -m``)."""

import sys

from .cli.main import main

sys.exit(main())
