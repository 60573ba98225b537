"""``python -m rtresponse`` is the ``rtresponse`` command."""

import sys

from .cli import main

sys.exit(main())
