"""The `mentorship` command line: parse the arguments, then hand over to `commands`.

This module stays light: the command's own imports happen after the stop signals are
taken care of, so Ctrl-C or SIGTERM during start-up ends `run` quietly too.
"""

from __future__ import annotations

import argparse
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import collector
from .signals import Stopped, stop_at_once

EXIT_OK = 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run":
        return _dispatch(args)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop_at_once()
    try:
        return _dispatch(args)
    except Stopped:  # before the daemon's loop began: nothing was under way
        return EXIT_OK
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _dispatch(args: argparse.Namespace) -> int:
    with collector.paused():  # importing makes long-lived objects, no garbage
        from .commands import dispatch
    return dispatch(args)


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time like 2027-02-20T09:00+00:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _duration(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(**{units[unit]: int(number)})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mentorship", description="Run mentorship programs by themselves.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str, *, folder: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=name, cohorts=None, cohort=None)
        if folder:  # one cohort file, or a folder of them
            which = sub.add_mutually_exclusive_group(required=True)
            which.add_argument("--config", type=Path, help="the cohort file (YAML)")
            which.add_argument("--cohorts", type=Path, metavar="DIR", help="every *.yaml cohort file in this folder")
        else:
            sub.add_argument("--config", type=Path, required=True, help="the cohort file (YAML)")
        sub.add_argument("--pairings", type=Path, help="pairings file (CSV or YAML); overrides the cohort file's")
        return sub

    command("validate", "check the configuration and summarise it")
    plan = command("plan", "show when every pair would meet and when each email goes out")
    plan.add_argument("--format", choices=("table", "json"), default="table")
    plan.add_argument("--state", help="SQLite file or PostgreSQL URL: show what it has booked, plan only the rest")
    preview = command("preview", "write every email of the program to a folder, to read in a browser")
    preview.add_argument("--out", type=Path, required=True, help="folder for index.html and the .eml files")
    preview.add_argument("--pair", help="only this pair's emails")
    run = command("run", "run the daemon: book, send and watch until stopped", folder=True)
    run.add_argument(
        "--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite, or .rehearsal.sqlite with --simulate)"
    )
    run.add_argument("--simulate", action="store_true", help="on a simulated clock that jumps from one due time to the next")
    run.add_argument("--until", type=_moment, help="with --simulate: stop before this moment")
    run.add_argument("--outbox", type=Path, help="write mail as .eml files to this folder instead")
    run.add_argument("--fresh", action="store_true", help="start the whole program again on an empty state, though it has run before")
    run.add_argument("--log-format", choices=("text", "json"), default="text", help="readable lines, or one JSON object per line")
    run.add_argument(
        "--lease", type=_duration, default=timedelta(seconds=30), help="--cohorts on PostgreSQL: how long a replica holds a cohort"
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve the web pages (dashboard, participant links; with --cohorts, every cohort's and an overview), e.g. 127.0.0.1:8080",
    )
    status = command("status", "show each pair's sessions and emails, and what needs attention", folder=True)
    status.add_argument("--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite)")
    status.add_argument("--format", choices=("table", "json"), default="table")
    health = command("health", "exit 0 if the daemon finished a tick lately, 1 if not (for container health checks)")
    health.add_argument("--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite)")
    health.add_argument("--max-age", type=_duration, default=timedelta(minutes=15), help="how old the last tick may be, e.g. 15m or 2h")
    changes = command("changes", "show what the files change against the running program, without applying it")
    approve = command("approve", "apply an edit held because it cancels many pairs")
    withdraw = command("withdraw", "a pair, or every pair of a person, leaves the program: coming sessions cancelled, emails stopped")
    withdraw.add_argument("target", metavar="PAIR|EMAIL")
    release = command("release", "plan a held or withdrawn pair again")
    release.add_argument("target", metavar="PAIR")
    reschedule = command("reschedule", "move one session of a pair and tell both people")
    reschedule.add_argument("target", metavar="PAIR")
    reschedule.add_argument("--session", type=int, choices=(1, 2), default=1)
    when = reschedule.add_mutually_exclusive_group()
    when.add_argument("--at", type=_moment, help="the new start, e.g. 2027-03-09T15:00+00:00")
    when.add_argument("--auto", action="store_true", help="the best other time both are free (the default)")
    resolve = command("resolve", "settle an email that may or may not have gone out")
    resolve.add_argument("message", metavar="MESSAGE", help="its reference, m-... as status prints it")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--sent", action="store_true", help="it did arrive: do not send it again")
    outcome.add_argument("--resend", action="store_true", help="it did not arrive: send it again")
    resend = command("resend", "send an email again: one that failed, or one a person says never arrived")
    resend.add_argument("message", metavar="MESSAGE", help="its reference, m-... as status and history print it")
    history = command("history", "every email and session change, oldest first, in UTC and the reader's own time")
    who = history.add_mutually_exclusive_group()
    who.add_argument("--person", metavar="EMAIL")
    who.add_argument("--pair", metavar="PAIR")
    backup = command("backup", "a consistent copy of the state, taken while the daemon runs")
    backup.add_argument("--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite)")
    backup.add_argument("--to", type=Path, required=True, help="the file to write")
    export = command("export", "one CSV row per pair: people, sessions, answers, emails sent, what needs attention")
    export.add_argument("--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite)")
    export.add_argument("--format", choices=("csv",), default="csv")
    for sub in (changes, approve, withdraw, release, reschedule, resolve, resend, history):
        sub.add_argument("--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite)")
        sub.add_argument("--format", choices=("text", "json"), default="text")
    password = command("set-password", "set the coordinator's password for the web dashboard (read from standard input)", folder=True)
    password.add_argument(
        "--state", help="SQLite file or PostgreSQL URL (default: state/<cohort file name>.sqlite, or state/<folder name>/ with --cohorts)"
    )
    auth = command("auth", "get Google credentials (login) or test them (check)")
    auth.add_argument("action", choices=("login", "check"))
    auth.add_argument("--client-secrets", type=Path, help="login: the OAuth client file from Google Cloud")
    auth.add_argument("--token", type=Path, default=Path("secrets/google-token.json"), help="login: where to keep the token")
    for sub in (plan, status, health, changes, approve, withdraw, release, reschedule, resolve, resend, history, export):
        sub.add_argument("--cohort", metavar="NAME", help="where the state holds several cohorts (run --cohorts): this one")
    for sub in (plan, preview, run, status, health, changes, approve, history, export):
        sub.add_argument("--now", type=_moment, help="act as if it were this moment (default: now)")
    return parser
