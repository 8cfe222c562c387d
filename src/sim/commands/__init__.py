"""Subcommands of ``sim`` other than ``run``: ``sim NAME ...`` calls ``sim.commands.NAME.main(argv)``."""


def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(own arguments, Hydra overrides after a "--")`` of a subcommand's argv."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []
