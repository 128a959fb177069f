"""The `mentorship` command: parse arguments, call the use case, print, exit."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import bootstrap, views
from .adapters.clock import SystemClock
from .config import ConfigError
from .domain.planning import plan_sessions
from .preview import write_preview

EXIT_OK, EXIT_CONFIG = 0, 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except ConfigError as exc:
        count = len(exc.problems)
        print(
            f"{count} problem{'s' if count != 1 else ''} in the configuration; nothing was booked or sent:",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG


def _validate(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    print(views.cohort_summary(inputs.cohort, busy_files=len(inputs.busy)))
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    plan = plan_sessions(inputs.cohort, inputs.busy, now=args.now or SystemClock().now())
    print(views.plan_json(plan) if args.format == "json" else views.plan_table(plan))
    return EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    if args.pair and args.pair not in {p.id for p in inputs.cohort.pairs}:
        print(f"no pair with id {args.pair!r}; see `mentorship plan` for the ids", file=sys.stderr)
        return EXIT_CONFIG
    plan = plan_sessions(inputs.cohort, inputs.busy, now=args.now or SystemClock().now())
    count = write_preview(plan, inputs.templates, args.out, pair_id=args.pair)
    print(f"{count} emails written to {args.out}/; open {args.out / 'index.html'} in a browser to read them.")
    return EXIT_OK


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time like 2027-02-20T09:00+00:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mentorship", description="Run mentorship programs by themselves.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=handler)
        sub.add_argument("--config", type=Path, required=True, help="the cohort file (YAML)")
        sub.add_argument("--pairings", type=Path, help="pairings file (CSV or YAML); overrides the cohort file's")
        return sub

    command("validate", _validate, "check the configuration and summarise it")
    plan = command("plan", _plan, "show when every pair would meet and when each email goes out")
    plan.add_argument("--format", choices=("table", "json"), default="table")
    preview = command("preview", _preview, "write every email of the program to a folder, to read in a browser")
    preview.add_argument("--out", type=Path, required=True, help="folder for index.html and the .eml files")
    preview.add_argument("--pair", help="only this pair's emails")
    for sub in (plan, preview):
        sub.add_argument("--now", type=_moment, help="plan as if it were this moment (default: now)")
    return parser
