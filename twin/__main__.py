"""``python -m twin``: the same command line as ``twin`` and ``run_sim.py``."""
import sys

from twin.cli import main

sys.exit(main())
