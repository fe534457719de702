"""``python -m ophyd_pvcam.cli``: the same as the ``ophyd-pvcam`` command."""

import sys

from ophyd_pvcam.cli import main

sys.exit(main())
