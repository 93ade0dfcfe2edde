"""``python -m daskgmm.cli``: the ``daskgmm`` program."""

import sys

from . import main

sys.exit(main())
