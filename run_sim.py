#!/usr/bin/env python3
"""twin's command line. ``python run_sim.py --help`` lists the commands."""
from twin.cli import console

if __name__ == "__main__":
    console()
