"""The ``driftwatch`` command: one module per subcommand (``demo``, ``check``,
``database`` for ``db upgrade``, ``diff``, ``webhooks``, ``serve``, ``chain``,
``packet``), :mod:`bot.cli.main` parses and dispatches."""

from bot.cli.main import main

__all__ = ["main"]
