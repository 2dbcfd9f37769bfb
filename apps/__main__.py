"""``python -m neurosynth.apps`` (and ``python -m neurosynth``): the ``neurosynth`` command."""

import sys

from .cli import main

sys.exit(main())
