"""``python -m twin``: the same command line as ``twin`` and ``run_sim.py``."""
from twin.cli import console

console()
