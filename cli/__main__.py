"""``python -m navkit.cli``: the same as the ``navkit`` command."""
import sys

from navkit.cli.main import main

sys.exit(main())
