"""Subcommands of ``sim`` other than ``run``: ``sim NAME ...`` calls ``sim.commands.NAME.main(argv)``."""
