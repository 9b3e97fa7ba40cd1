"""``python -m bot.cli``: the ``driftwatch`` command."""

from bot.cli.main import main

raise SystemExit(main())
