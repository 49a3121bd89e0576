"""python -m wsgiship: the wsgiship command."""

import sys

from .cli import main

sys.exit(main())
