"""``python -m optical_core.cli``: the same as the ``optical`` command."""

import sys

from optical_core.cli.entry import main

sys.exit(main())
