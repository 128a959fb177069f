"""What each `mentorship` command does: call the use cases, print, return the exit status."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import bootstrap, views
from .adapters.clock import SimulatedClock, SystemClock
from .adapters.filemail import FileMailer
from .adapters.store import StateError
from .config import ConfigError, Problem
from .domain.bookings import Bookings, bookings, plan_around
from .domain.changes import base_id, identify
from .domain.model import Pair
from .domain.outbox import RESENDABLE, State
from .domain.planning import PairPlan, Plan, plan_sessions
from .domain.ports import Clock, Purpose, Store
from .domain.requests import RequestKind
from .logs import configure as configure_logs
from .preview import write_preview
from .runner import REQUEST_CHECK_SECONDS, run_forever, run_simulated
from .signals import on_stop
from .status import status_report
from .usecases import Controller, Deps
from .usecases.changes import read_change
from .usecases.requests import approval
from .usecases.schedule import counts_with

if TYPE_CHECKING:  # the web's libraries load only when --http asks for the pages
    from .fleet import Fleet
    from .web.server import WebServer

EXIT_OK, EXIT_BUSY, EXIT_CONFIG = 0, 1, 2
MIN_PASSWORD = 10


def dispatch(args: argparse.Namespace) -> int:
    """Run the command; a configuration with problems lists them all and exits 2."""
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc.headline, file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        _print_warnings(exc.warnings)
        return EXIT_CONFIG
    except StateError as exc:
        print(f"{bootstrap.shown(args.state) if args.state else 'state'}: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _validate(args: argparse.Namespace) -> int:
    configuration, inputs = bootstrap.load(args.config, args.pairings)
    print(views.cohort_summary(inputs.cohort, busy_files=len(inputs.busy)))
    _print_warnings(configuration.warnings)
    return EXIT_OK


def _print_warnings(warnings: Sequence[Problem]) -> None:
    """How some input was read (a column kept unused, a time zone spelling mapped): worth
    a look, never a failure."""
    if warnings:
        print(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}:", file=sys.stderr)
        for problem in warnings:
            print(problem, file=sys.stderr)


def _plan(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    now = args.now or SystemClock().now()
    if args.state is None:
        plan, booked = plan_sessions(inputs.cohort, inputs.busy, now=now), set()
    else:  # what stands is shown as booked; only the rest is planned
        store = _existing_state(args)
        if store is None:
            return EXIT_CONFIG
        try:
            current = bookings(inputs.cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
        finally:
            store.close()
        planned = {item.pair.id: item for item in plan_around(inputs.cohort, inputs.busy, current, now=now).pairs}
        plan = Plan(cohort=inputs.cohort, pairs=tuple(planned.get(p.id) or _waiting(p, current) for p in inputs.cohort.pairs))
        booked = {s for sessions in current.standing().values() for s in sessions}
    print(views.plan_json(plan, booked) if args.format == "json" else views.plan_table(plan, booked))
    return EXIT_OK


def _waiting(pair: Pair, current: Bookings) -> PairPlan:
    """A pair the planner leaves to the daemon or the coordinator, and why."""
    if pair.id in current.partial:
        (standing,) = current.partial[pair.id][:1]
        why = f"session {standing.number} stands at {standing.start:%a %d %b %Y %H:%M} UTC; the daemon books the other again"
    else:
        why = "held or withdrawn: waiting for the coordinator (see `mentorship status`)"
    return PairPlan(pair=pair, sessions=(), problems=(why,))


def _preview(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    if args.pair and args.pair not in {p.id for p in inputs.cohort.pairs}:
        print(f"no pair with id {args.pair!r}; see `mentorship plan` for the ids", file=sys.stderr)
        return EXIT_CONFIG
    plan = plan_sessions(inputs.cohort, inputs.busy, now=args.now or SystemClock().now())
    count = write_preview(plan, inputs.templates, args.out, pair_id=args.pair)
    print(f"{count} emails written to {args.out}/; open {args.out / 'index.html'} in a browser to read them.")
    return EXIT_OK


@contextmanager
def _owner_only() -> Iterator[None]:
    """Files made meanwhile (the state, its lock, the outbox, a backup) hold participants'
    details: readable by their owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _run(args: argparse.Namespace) -> int:
    with _owner_only():
        return _run_daemon(args)


def _run_daemon(args: argparse.Namespace) -> int:
    configure_logs(args.log_format)
    if args.cohorts is not None:
        return _run_cohorts(args)
    purpose = Purpose.REHEARSAL if args.simulate else Purpose.REAL
    state = args.state or str(bootstrap.default_state(args.config, purpose))
    simulated = SimulatedClock(args.now or SystemClock().now()) if args.simulate else None
    clock = simulated or SystemClock()
    watcher = bootstrap.ConfigWatcher.start(args.config, args.pairings, clock)  # must be valid: ConfigError ends here
    try:
        store, release = bootstrap.open_locked_state(state)
    except bootstrap.AlreadyRunning as exc:
        print(f"not starting: {exc}", file=sys.stderr)
        return EXIT_BUSY
    try:
        if purpose is Purpose.REAL:
            bootstrap.guard_against_lost_state(store, state, watcher.configuration.cohort.name, fresh=args.fresh, now=clock.now())
        bootstrap.claim(store, state, purpose)
        calendar, free_busy, gmail = bootstrap.google_adapters(watcher.configuration)
        meet = bootstrap.meet_adapter(watcher.configuration)
    except (bootstrap.WrongPurpose, bootstrap.LostState, bootstrap.GoogleSetupError) as exc:
        release()
        print(f"not starting: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if simulated:  # a rehearsal resumed on the same state carries on from where it stopped
        simulated.advance_to(store.latest_activity() or simulated.now())
    mailer = (
        gmail
        if gmail and not args.outbox
        else bootstrap.make_mailer(watcher.configuration, bootstrap.default_outbox(state, purpose), args.outbox)
    )
    replies = bootstrap.make_replies(watcher.configuration)
    budget = bootstrap.send_budget(watcher.configuration) if mailer is gmail else None
    # Not in a rehearsal: Google's channels expire in real time, which a simulated clock outruns.
    served = bool(args.http) and not simulated
    watch, notify_address = bootstrap.calendar_watch(calendar, watcher.configuration.public_url if served else None)
    deps = Deps(
        store=store,
        mailer=mailer,
        source=watcher,
        calendar=calendar,
        free_busy=free_busy,
        replies=replies,
        meet=meet,
        budget=budget,
        watch=watch,
        notify_address=notify_address,
    )
    controller, web = Controller(deps, poll=watcher.configuration.poll), None
    if args.http:
        started = _start_web(args.http, deps, clock, watcher)
        if isinstance(started, str):
            release()
            print(f"not starting: {started}", file=sys.stderr)
            return EXIT_CONFIG
        controller, web = started
    try:
        if simulated:
            run_simulated(controller, simulated, args.until)
            print(views.totals_line(counts_with(store.message_counts(), store.foreseen())))
            if isinstance(mailer, FileMailer):
                print(f"The emails are in {mailer.folder}/ (open the .eml files in a mail program).")
            if web is not None:
                _keep_serving(controller, simulated, args.http)
        else:
            print(f"running; state in {bootstrap.shown(state)}; stop with Ctrl-C or SIGTERM", flush=True)
            run_forever(controller, clock, watcher.configuration.poll)
    finally:
        if web is not None:
            web.stop()
        release()
    if controller.lost_lock:
        print(
            f"stopped: the lock on {bootstrap.shown(state)} was lost, so another daemon may be working on it; start again when it is not",
            file=sys.stderr,
        )
        return EXIT_BUSY
    return EXIT_OK


def _run_cohorts(args: argparse.Namespace) -> int:
    """`run --cohorts DIR`: every cohort in the folder, in one process; on PostgreSQL,
    beside other replicas that share the cohorts through leases."""
    from sqlalchemy.exc import SQLAlchemyError

    from .fleet import Fleet, Settings, default_state, make_claims, replica_name

    if args.pairings:
        print("not starting: --pairings works with one cohort (--config), not with --cohorts", file=sys.stderr)
        return EXIT_CONFIG
    purpose = Purpose.REHEARSAL if args.simulate else Purpose.REAL
    state = args.state or str(default_state(args.cohorts))
    start = (args.now or SystemClock().now()) if args.simulate else None
    settings = Settings(
        folder=args.cohorts, state=state, purpose=purpose, start=start, outbox=args.outbox, lease=args.lease, fresh=args.fresh
    )
    fleet = Fleet(settings, replica_name())
    fleet.check()  # every cohort file valid, or ConfigError: nothing booked or sent
    shown = state.split("@")[-1]  # no password from a URL
    print(f"running {len(fleet.loaded)} cohorts as {fleet.owner}; state in {shown}; stop with Ctrl-C or SIGTERM", flush=True)
    try:
        claims = make_claims(state, fleet.owner, args.lease)
    except SQLAlchemyError as error:
        print(f"not starting: the state cannot be reached ({type(getattr(error, 'orig', None) or error).__name__})", file=sys.stderr)
        return EXIT_BUSY
    web = None
    if args.http:
        started = _serve_cohorts(fleet, args.http)
        if isinstance(started, str):
            claims.close()
            print(f"not starting: {started}", file=sys.stderr)
            return EXIT_CONFIG
        web = started
    try:
        fleet.run(claims)
        if args.simulate:
            print(f"{len(fleet.finished)} cohorts finished")
            if web is not None:  # as after one cohort's rehearsal, the pages stay up until stopped
                print(f"The overview is at http://{args.http}/ ; stop with Ctrl-C.", flush=True)
                stop = threading.Event()
                on_stop(stop)
                stop.wait()
    finally:
        if web is not None:
            web.stop()
        fleet.view.close()
    return EXIT_OK


def _serve_cohorts(fleet: Fleet, address: str) -> WebServer | str:
    """The pages of every cohort of the fleet, and the links its emails carry to them; or
    why they cannot be served."""
    from .web.cohorts import FleetSite, serve_cohorts
    from .web.server import WebError

    site = FleetSite(fleet.view)
    fleet.links_for = site.links_for
    fleet.public_url_of = site.public_url_of
    fleet.controller_for = site.controller_for
    try:
        return serve_cohorts(site, address)
    except (ValueError, WebError) as error:
        return str(error)


def _start_web(address: str, deps: Deps, clock: Clock, watcher: bootstrap.ConfigWatcher) -> tuple[Controller, WebServer] | str:
    """The web pages beside the daemon (`--http`), and a controller that times its ticks for
    them; or why they cannot be served."""
    from .web.metrics import MeteredController, Metrics
    from .web.serve import make_site, serve
    from .web.server import WebError

    metrics = Metrics(deps.store)
    controller = MeteredController(deps, metrics, poll=watcher.configuration.poll)
    given = watcher.current()[0]  # until the first tick settles what is in force
    site = make_site(
        deps.store,
        clock,
        lambda: controller.inputs or given,
        lambda: watcher.given,
        poll=watcher.configuration.poll,
        public_url=watcher.configuration.public_url,
        metrics=metrics,
        unplanned=lambda: controller.unplanned,
        config_problems=lambda: watcher.problems,
    )
    deps.links = site.links()
    try:
        return controller, serve(site, address)
    except (ValueError, WebError) as error:
        return str(error)


def _keep_serving(controller: Controller, clock: Clock, address: str) -> None:
    """After a rehearsal the pages stay up, and what is asked there is applied, until stopped."""
    print(f"The dashboard is at http://{address}/ ; stop with Ctrl-C.", flush=True)
    store, stop = controller.deps.store, controller.deps.stop
    while not stop.wait(REQUEST_CHECK_SECONDS):
        if store.pending_requests():
            controller.tick(clock.now())


def _set_password(args: argparse.Namespace) -> int:
    """The coordinator's password for the dashboard, kept in the state as a scrypt hash."""
    from .web.security import hash_password

    password = getpass.getpass("New dashboard password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD:
        print(f"not set: a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return EXIT_CONFIG
    if args.cohorts is not None:
        return _set_password_of_cohorts(args, password)
    store = bootstrap.open_state(args.state or str(bootstrap.default_state(args.config)))
    try:
        store.set_password_hash(hash_password(password))
    finally:
        store.close()
    print("password set; signed-in sessions made with an older one have ended")
    return EXIT_OK


def _set_password_of_cohorts(args: argparse.Namespace, password: str) -> int:
    """`set-password --cohorts DIR`: the same password in every cohort's state (each its own
    hash), which the pages of `run --cohorts DIR --http` take to open them all."""
    from .adapters.store import open_store
    from .adapters.store.leases import is_database
    from .fleet import cohort_files, cohort_state, default_state
    from .web.security import hash_password

    state = args.state or str(default_state(args.cohorts))
    found, problems = cohort_files(args.cohorts)
    if problems:
        raise ConfigError(problems)
    if not found:
        print(f"not set: no *.yaml cohort file in {args.cohorts}", file=sys.stderr)
        return EXIT_CONFIG
    for name in found:
        if is_database(state):
            places = [open_store(state, cohort=name)]
        else:  # a cohort not run yet gets its state now, as one cohort's does; a rehearsal's too where it has one
            rehearsal = Path(cohort_state(state, name, Purpose.REHEARSAL))
            places = [open_store(cohort_state(state, name))] + ([open_store(rehearsal)] if rehearsal.exists() else [])
        for store in places:
            try:
                store.set_password_hash(hash_password(password))
            finally:
                store.close()
    print(f"password set for {len(found)} cohorts; signed-in sessions made with an older one have ended")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    """For container health checks: fails when the daemon has not finished a tick lately."""
    store = _existing_state(args)
    if store is None:
        return EXIT_BUSY
    try:
        last = store.last_tick()
    finally:
        store.close()
    now = args.now or SystemClock().now()
    if last is None or now - last > args.max_age:
        when = "never" if last is None else f"{(now - last).total_seconds() / 60:.0f} minutes ago"
        print(f"unhealthy: the daemon's last tick was {when}", file=sys.stderr)
        return EXIT_BUSY
    print(f"healthy: last tick {last:%Y-%m-%d %H:%M:%S} UTC")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    if args.cohorts is not None:
        return _status_of_cohorts(args)
    report = _report(args)
    if report is None:
        return EXIT_CONFIG
    print(views.status_json(report) if args.format == "json" else views.status_table(report))
    return EXIT_OK


def _status_of_cohorts(args: argparse.Namespace) -> int:
    """`status --cohorts DIR`: each cohort of a state holding several, and all together."""
    from .fleet import cohort_files, default_state, open_cohort

    state = args.state or str(default_state(args.cohorts))
    found, problems = cohort_files(args.cohorts)
    if problems:
        raise ConfigError(problems)
    now = args.now or SystemClock().now()
    reports: dict[str, dict | None] = {}
    for name, path in found.items():
        inputs = bootstrap.load_inputs(path)
        store = open_cohort(state, name)
        if store is None:
            reports[name] = None
            continue
        try:
            reports[name] = status_report(inputs, store, now=now)
        finally:
            store.close()
    totals: dict[str, int] = {}
    for report in reports.values():
        for key, count in (report or {}).get("totals", {}).items():
            totals[key] = totals.get(key, 0) + count
    if args.format == "json":
        print(json.dumps({"cohorts": reports, "totals": totals}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for name, report in reports.items():
        print(f"== cohort {name} ==")
        print(views.status_table(report) if report else "not started yet")
        print()
    print(f"all {len(reports)} cohorts: " + (", ".join(f"{count} {key}" for key, count in sorted(totals.items())) or "nothing yet"))
    return EXIT_OK


def _backup(args: argparse.Namespace) -> int:
    state = args.state or str(bootstrap.default_state(args.config))
    if "://" not in state and not Path(state).exists():
        print(f"no state at {state}: nothing to back up", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with _owner_only():
            print(bootstrap.backup(state, args.to))
    except (OSError, sqlite3.Error, subprocess.CalledProcessError) as error:
        print(f"backup failed: {type(error).__name__}", file=sys.stderr)
        return EXIT_BUSY
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    report = _report(args)
    if report is None:
        return EXIT_CONFIG
    lines = views.history_lines(report, person=args.person, pair_id=args.pair)
    if args.format == "json":
        print(json.dumps(lines, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines) if lines else "nothing yet")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    report = _report(args)
    if report is None:
        return EXIT_CONFIG
    print(views.export_csv(report), end="")
    return EXIT_OK


def _report(args: argparse.Namespace) -> dict | None:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    store = _existing_state(args)
    if store is None:
        return None
    try:
        return status_report(inputs, store, now=args.now or SystemClock().now())
    finally:
        store.close()


def _changes(args: argparse.Namespace) -> int:
    """What the files change against the running state, applied or held; changes nothing."""
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    store = _existing_state(args)
    if store is None:
        return EXIT_CONFIG
    try:
        report = views.change_report(*read_change(store, inputs, args.now or SystemClock().now()), store.known_pairs())
    finally:
        store.close()
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.format == "json" else views.change_table(report))
    return EXIT_OK


def _approve(args: argparse.Namespace) -> int:
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    store = _existing_state(args)
    if store is None:
        return EXIT_CONFIG
    try:
        _, _, held = read_change(store, inputs, args.now or SystemClock().now())
        if held is None:
            print("nothing is waiting for approval")
            return EXIT_OK
        return _queue(store, RequestKind.APPROVE, approval(held), args, "\n".join(held.summary))
    finally:
        store.close()


def _withdraw(args: argparse.Namespace) -> int:
    """A pair, or every pair of a person, leaves the program."""
    return _about_pairs(args, RequestKind.WITHDRAW, {}, people=True)


def _release(args: argparse.Namespace) -> int:
    return _about_pairs(args, RequestKind.RELEASE, {})


def _reschedule(args: argparse.Namespace) -> int:
    at = "auto" if args.at is None else args.at.isoformat()
    return _about_pairs(args, RequestKind.RESCHEDULE, {"session": str(args.session), "at": at}, session=args.session)


def _resolve(args: argparse.Namespace) -> int:
    store = _existing_state(args)
    if store is None:
        return EXIT_CONFIG
    try:
        refs = {row.ref for row in store.messages_needing_a_human() if row.state is State.UNCERTAIN}
        if args.message not in refs:
            print(f"no email {args.message!r} is waiting to be settled; `mentorship status` lists them", file=sys.stderr)
            return EXIT_CONFIG
        if args.resend:
            return _queue(store, RequestKind.RESOLVE, {"message": args.message, "outcome": "resend"}, args, f"{args.message} sent again")
        return _queue(store, RequestKind.RESOLVE, {"message": args.message, "outcome": "sent"}, args, f"{args.message} settled as sent")
    finally:
        store.close()


def _resend(args: argparse.Namespace) -> int:
    store = _existing_state(args)
    if store is None:
        return EXIT_CONFIG
    try:
        row = next((row for row in store.messages() if row.ref == args.message), None)
        if row is None or row.state not in RESENDABLE:
            why = f"it is {row.state.value}" if row else "there is no such email; `mentorship history` lists them"
            print(f"{args.message} cannot be sent again: {why}", file=sys.stderr)
            return EXIT_CONFIG
        return _queue(store, RequestKind.RESEND, {"message": args.message}, args, f"{args.message} sent again to {row.recipient}")
    finally:
        store.close()


def _about_pairs(
    args: argparse.Namespace, kind: RequestKind, extra: dict[str, str], *, people: bool = False, session: int | None = None
) -> int:
    """Queue one request per pair named (by id, or by a person's email where `people`)."""
    inputs = bootstrap.load_inputs(args.config, args.pairings)
    store = _existing_state(args)
    if store is None:
        return EXIT_CONFIG
    try:
        known = store.known_pairs()
        current = {**known, **{p.id: p for p in identify(inputs.cohort.pairs, known)}}
        by_id = {base_id(key): key for key in sorted(current)}  # the latest generation of each id
        target = args.target
        if target in current or target in by_id:
            keys = [target if target in current else by_id[target]]
        elif people and "@" in target:
            keys = sorted(key for key in by_id.values() if target.lower() in (p.email.lower() for p in current[key].people))
        else:
            keys = []
        if not keys:
            print(f"no pair {'or person ' if people else ''}{target!r}; `mentorship status` lists them", file=sys.stderr)
            return EXIT_CONFIG
        for key in keys:
            request = {"pair": key, **extra}
            if session is not None:  # the session as it stands now: the request moves it once
                record = next((r for r in store.sessions([key]) if r.session.number == session and not r.cancelled), None)
                if record is None:
                    print(f"{key} has no booked session {session} to move", file=sys.stderr)
                    return EXIT_CONFIG
                request["sequence"] = str(record.sequence)
            code = _queue(store, kind, request, args, f"{kind.value} {key}")
        return code
    finally:
        store.close()


def _queue(store: Store, kind: RequestKind, request: dict[str, str], args: argparse.Namespace, what: str) -> int:
    number = store.add_request(kind, request, SystemClock().now())
    if args.format == "json":
        print(json.dumps({"request": number, "kind": kind.value, **request}))
    else:
        print(f"request {number} queued ({what}); the daemon applies it on its next tick, within seconds while it runs")
    return EXIT_OK


def _existing_state(args: argparse.Namespace) -> Store | None:
    if getattr(args, "cohort", None):  # one cohort of a state that holds several: its file is DIR/NAME.yaml
        from .fleet import default_state, open_cohort

        state = args.state or str(default_state(args.config.parent))
        store = open_cohort(state, args.cohort)
        if store is None:
            print(f"no cohort {args.cohort} in {state}: the daemon has not run it yet", file=sys.stderr)
        return store
    state = args.state or str(bootstrap.default_state(args.config))
    if "://" not in state and not Path(state).exists():
        print(f"no state at {state}: the daemon has not run yet", file=sys.stderr)
        return None
    return bootstrap.open_state(state)


def _auth(args: argparse.Namespace) -> int:
    from . import googleauth
    from .config import load_configuration

    configuration = load_configuration(args.config, args.pairings)
    if args.action == "login":
        if not args.client_secrets:
            print("auth login needs --client-secrets FILE (an OAuth client of type Desktop app)", file=sys.stderr)
            return EXIT_CONFIG
        try:
            print(googleauth.login(args.client_secrets, args.token, configuration))
        except googleauth.LoginFailed as failed:
            print(f"auth login: {failed}", file=sys.stderr)
            return EXIT_CONFIG
        return EXIT_OK
    results = googleauth.check(configuration)
    for what, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'}  {what}: {detail}")
    return EXIT_OK if all(ok for _, ok, _ in results) else EXIT_CONFIG


COMMANDS = {
    "validate": _validate,
    "plan": _plan,
    "preview": _preview,
    "run": _run,
    "status": _status,
    "health": _health,
    "changes": _changes,
    "history": _history,
    "backup": _backup,
    "export": _export,
    "approve": _approve,
    "withdraw": _withdraw,
    "release": _release,
    "reschedule": _reschedule,
    "resolve": _resolve,
    "resend": _resend,
    "auth": _auth,
    "set-password": _set_password,
}
