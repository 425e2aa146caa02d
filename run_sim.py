#!/usr/bin/env python3
"""twin's command line. ``python run_sim.py --help`` lists the commands."""
import sys

from twin.cli import main

if __name__ == "__main__":
    sys.exit(main())
