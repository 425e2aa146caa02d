"""The command-center web page: one screen of the city, served by the live twin (``live --listen``) and by
``run_sim.py view`` on a results folder. Its scripts ship in ``static/vendor`` (docs/dashboard.md)."""
