"""The ``driftwatch`` command.

Every subcommand explains itself with ``--help``. Errors are one clear line (a config
problem is one line per problem) and a non-zero exit, never a traceback; ``--debug``
shows the traceback for a bug report.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from ledger import LedgerError
from monitors.config import ConfigError, format_problems

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report to the user as one line."""


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser. It takes ``--debug`` too (``driftwatch demo --debug``), as
    the error messages suggest; SUPPRESS keeps a ``--debug`` given before the subcommand.
    Subcommands of subcommands (``db upgrade``) get this class as well."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks and debug logs",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftwatch",
        description=(
            "Watch Shopify, WMS and ERP inventory for drift; alert and resync in Slack. "
            "Start with `driftwatch demo`: it needs no accounts."
        ),
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_SubcommandParser
    )

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            default="driftwatch.toml",
            metavar="FILE",
            help="the configuration file (default: ./driftwatch.toml)",
        )

    p = sub.add_parser(
        "demo",
        help="run the sandbox world and the bot on loopback (no accounts needed)",
        description=(
            "Start a fake Shopify, WMS, ERP and Slack on 127.0.0.1 and the real bot "
            "against them (ledger in SQLite), print the channel page's URL, and play the "
            "scripted drift scenarios in accelerated time (under a minute): incidents "
            "arrive in the channel with their charts and likely causes. Then, in the "
            "browser: click Resync, confirm, type /drift SKU. Ctrl-C stops."
        ),
    )
    p.add_argument(
        "--scenario",
        metavar="NAME",
        help="play only this scenario (default: all); an unknown name lists the valid ones",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite file for the ledger (default: a temporary file, removed afterwards)",
    )
    p.add_argument(
        "--headless",
        action="store_true",
        help="play the scenarios without the browser page and exit (for scripts and CI)",
    )
    p.add_argument(
        "--report",
        metavar="FILE.json",
        help="with --headless: write what happened (incidents with their likely causes, "
        "messages, resyncs, final quantities, each scenario's expected and observed "
        "root cause) as JSON",
    )

    p = sub.add_parser(
        "check",
        help="validate the configuration and the environment it names",
        description=(
            "Validate the configuration file: print every problem with its path in the "
            "file (e.g. `systems[1].base_url: not a URL`) and exit 1 if there are any. "
            "Also reports secrets the file names that are not set in the environment."
        ),
    )
    with_config(p)
    p.add_argument(
        "--no-env", action="store_true", help="do not check that the named variables are set"
    )

    p = sub.add_parser(
        "db",
        help="database maintenance",
        description="Database maintenance. DATABASE_URL selects the database (default: SQLite).",
    )
    db_sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser(
        "upgrade",
        help="migrate the ledger to the latest schema",
        description=(
            "Run the Alembic migrations to the latest revision on DATABASE_URL, or on the "
            "SQLite file named by --db (default: ./driftwatch.db)."
        ),
    )
    up.add_argument("--db", metavar="PATH", default="driftwatch.db", help="SQLite file")

    p = sub.add_parser(
        "diff",
        help="run one drift diff now and print it",
        description=(
            "Read every configured system once, compare them, and print the drifts as a "
            "table (or JSON). Records nothing and alerts nobody. With --demo, runs against "
            "a freshly started sandbox world instead of a configuration."
        ),
    )
    with_config(p)
    p.add_argument("--sku", action="append", metavar="SKU", help="only this SKU (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--demo", action="store_true", help="diff the sandbox demo world")

    p = sub.add_parser(
        "webhooks",
        help="check Shopify's webhook subscriptions (and create missing ones)",
        description=(
            "List the shop's webhook subscriptions for the topics Driftwatch listens to "
            "and report any missing or pointing elsewhere than the configured "
            "webhook_url; --create subscribes the missing ones (nothing is deleted)."
        ),
    )
    with_config(p)
    p.add_argument("--create", action="store_true", help="subscribe the missing topics")

    p = sub.add_parser(
        "chain",
        help="measure each hop of the signal chain from the level history",
        description=(
            "For each hop of the signal chain (the first source of truth to every other "
            "system, and the hops declared in [[chain.hops]]), how long the changes of "
            "the last days took to show up downstream: p50, p95 and max, the share that "
            "never arrived, and which hops are over their declared SLA. Reads the ledger "
            "`driftwatch serve` records (DATABASE_URL, else the configured database)."
        ),
    )
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="measure the changes of the last N days (default: chain.window_days)",
    )

    p = sub.add_parser(
        "packet",
        help="write the inventory reliability packet (Markdown and HTML, with charts)",
        description=(
            "Write the inventory reliability packet into DIR: packet.md, packet.html and "
            "its charts — the sync contract (source-of-truth hierarchy, state mapping, SKU "
            "normalization, transforms, idempotency keys, hops and their SLAs), the "
            "escalation rulebook (the auto-resync policy, thresholds, escalation) and the "
            "KPI dashboard (the recent weeks with their verdicts). Generated from the "
            "configuration and the ledger. With --demo, from the sandbox demo world after "
            "its scenarios have played."
        ),
    )
    with_config(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write into")
    p.add_argument("--demo", action="store_true", help="the packet of the sandbox demo world")

    p = sub.add_parser(
        "serve",
        help="run Driftwatch: the web server and the scheduled monitors",
        description=(
            "Migrate the ledger, then run the scheduled drift diff (with the auto-resync "
            "policy), the sync-health and webhook-health monitors, the weekly and daily "
            "reports and the Slack outbox, and serve /slack/events (Slack's request URL, "
            "when a signing secret is set), /webhooks/shopify, /healthz and /metrics on "
            "the configured host and port. With SLACK_APP_TOKEN (slack.app_token_env) "
            "set, Slack is reached over Socket Mode instead of a public request URL."
        ),
    )
    with_config(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_dispatch(args))
    except ConfigError as exc:
        print(format_problems(exc.problems), file=sys.stderr)
        return EXIT_PROBLEMS
    except (CliError, ConnectorError, LedgerError) as exc:
        if args.debug:
            raise
        print(f"driftwatch: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except FileNotFoundError as exc:
        if args.debug:
            raise
        print(f"driftwatch: {_missing_file(exc)}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        print("driftwatch: stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"driftwatch: unexpected error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS


def _missing_file(exc: FileNotFoundError) -> str:
    """What is missing and what to do, in one line."""
    if exc.filename is None:  # raised with a message of ours that already says both
        return str(exc)
    return (
        f"a file Driftwatch needs is missing: {exc.filename}. Check the path (in the "
        "configuration, or the command's options); if it belongs to Driftwatch itself, "
        "reinstall it (pip install -e .)."
    )


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from bot.cli.demo import chosen_scenarios, run_demo

        if args.report and not args.headless:
            raise CliError("--report needs --headless")
        try:
            chosen_scenarios(args.scenario)
        except KeyError as exc:
            print(f"driftwatch: {exc.args[0]}", file=sys.stderr)
            return EXIT_USAGE
        stop = asyncio.Event()
        if not args.headless:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        return await run_demo(
            db_path=Path(args.db) if args.db else None,
            headless=args.headless,
            report=Path(args.report) if args.report else None,
            scenario=args.scenario,
            stop=stop,
        )
    if args.command == "check":
        from bot.cli.check import run_check

        return run_check(Path(args.config), environ=None if args.no_env else dict(os.environ))
    if args.command == "db":
        from bot.cli.database import run_upgrade

        return await run_upgrade(Path(args.db))
    if args.command == "diff":
        from bot.cli.diff import run_diff_command

        return await run_diff_command(
            Path(args.config), skus=args.sku, as_json=args.json, demo=args.demo
        )
    if args.command == "webhooks":
        from bot.cli.webhooks import run_webhooks_command

        return await run_webhooks_command(Path(args.config), create=args.create)
    if args.command == "chain":
        from bot.cli.chain import run_chain_command

        if args.days is not None and not 1 <= args.days <= 90:
            raise CliError("--days must be between 1 and 90")
        return await run_chain_command(Path(args.config), as_json=args.json, days=args.days)
    if args.command == "packet":
        from bot.cli.packet import run_packet_command

        return await run_packet_command(Path(args.config), Path(args.out), demo=args.demo)
    if args.command == "serve":
        from bot.cli.serve import run_serve

        return await run_serve(Path(args.config))
    raise CliError(f"unknown command {args.command}")
