"""Command line: ``python -m engine run | migrate | asterisk-config render DIR [--node ID] |
kamailio-config render DIR | account create | token create | token revoke``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from engine import eventloop
from engine.config import Settings
from engine.domain.errors import VecheError
from engine.logging import configure_logging

log = logging.getLogger("engine")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, a service manager, a closed terminal
EXIT_LEASE_LOST = 3  # not 2 (a configuration error): a supervisor starts the engine again, as the standby


class LeaseLost(Exception):
    """The active engine of a pair could not renew its leader lease in time."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Outside the event loop (while PostgreSQL and Asterisk start or stop), SIGTERM and SIGHUP
    end ``run`` as Ctrl-C does, through the clean-up of ``local_stack``."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


async def _run(settings: Settings) -> None:
    from aiohttp import web

    from engine.app import Engine
    from web.app import init_app

    engine = Engine(settings)
    if settings.engine_id:
        print(f"Engine {settings.engine_id}: waiting for the leader lease (the standby of a pair serves "
              "nothing until it takes over)...", flush=True)
    try:
        await engine.start()
    except BaseException:
        await engine.stop()  # close what did start (pool, AMI) before reporting the error
        raise
    try:
        runner = web.AppRunner(init_app(engine.services))
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        except OSError as exc:
            await runner.cleanup()
            raise VecheError(f"cannot listen on {settings.web_host}:{settings.web_port}: {exc.strerror}") from None
        sip = (f"SIP {settings.sip_host}:{settings.sip_port} (Kamailio) in front of nodes "
               + ", ".join(f"{n.node_id} {n.sip_host}" for n in settings.media_nodes)
               + f", AMI port {settings.ami.port}") if settings.several_nodes else \
            f"SIP {settings.sip_host}:{settings.sip_port}, AMI {settings.ami.host}:{settings.ami.port}"
        print(f"Veche is up: web UI at http://{settings.web_host}:{settings.web_port}/  ({sip}, "
              f"FastAGI {settings.agi_host}:{settings.agi_port}, "
              f"metrics {settings.metrics_host}:{settings.metrics_port}, access number {settings.access_number}). "
              "Ctrl-C stops everything.", flush=True)
        if not os.environ.get("DATABASE_URL"):
            print(f"Private PostgreSQL: DATABASE_URL={settings.database_url} "
                  "(for `python -m engine account create ...`)", flush=True)
        if settings.mail_sink:
            print(f"No VECHE_SMTP_HOST: mail is kept in {settings.run_dir / 'mail'} (Operator > Outbox).", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        stopped, deposed = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(engine.deposed.wait())
        await asyncio.wait({stopped, deposed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        deposed.cancel()
        print("Stopping Veche...", flush=True)
        await runner.cleanup()
    finally:
        await engine.stop()
    if engine.deposed.is_set():
        raise LeaseLost(f"engine {settings.engine_id} lost the leader lease; it exits to be started again "
                        "as the standby")


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from engine.stack import local_stack

    settings.refuse_mail_sink()  # before anything starts: one line, exit 2
    settings.refuse_default_secrets()
    _stop_on_signals()
    # PostgreSQL and Asterisk run in sessions of their own: a signal for the engine never reaches
    # them, and an engine that dies (kill -9) leaves them running; the next run adopts them or
    # stops them (see engine/stack.py), so `run` always comes up again.
    with local_stack(settings.with_generated_secrets()) as ready:
        try:
            eventloop.run(_run(ready))
        finally:
            _stop_on_signals()  # the event loop's handlers are gone; the clean-up stays interruptible


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from engine.adapters.db import create_pool
    from engine.adapters.db.migrations import migrate

    async def go() -> None:
        if not settings.database_url:
            raise VecheError("set DATABASE_URL to migrate")
        pool = await create_pool(settings.database_url, min_size=1, max_size=1, name="veche-cli")
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        await pool.close()
        print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.path.name}" for m in applied))

    eventloop.run(go())


def cmd_render(settings: Settings, args: argparse.Namespace) -> None:
    from engine.stack import node_settings, render_asterisk_config

    if args.node:  # one of several nodes: its own host, its trunk to Kamailio
        from engine.domain.errors import ConfigError

        spec = next((n for n in settings.media_nodes if n.node_id == args.node), None)
        if spec is None:
            known = ", ".join(n.node_id for n in settings.media_nodes)
            raise ConfigError(f"no node {args.node!r}: the nodes are {known}")
        settings = node_settings(settings, spec)

    dialout = None
    if args.with_groups:  # veche-dialout with the operator's number-plan groups from DATABASE_URL
        from engine.adapters.db import create_pool
        from engine.adapters.db.operator import OperatorRepository
        from engine.domain.errors import ConfigError
        from engine.domain.numberplan import DialoutRules, NumberPlan
        from engine.services.dialplan import rules_from_groups

        async def load() -> DialoutRules:
            if not settings.database_url:
                raise ConfigError("--with-groups needs DATABASE_URL")
            pool = await create_pool(settings.database_url, min_size=1, max_size=1, name="veche-cli")
            try:
                return await rules_from_groups(OperatorRepository(pool), NumberPlan.from_settings(settings))
            finally:
                await pool.close()

        dialout = eventloop.run(load())
    dest = render_asterisk_config(settings, Path(args.dir), dialout=dialout)
    print(f"rendered asterisk-config into {dest}")


def cmd_render_kamailio(settings: Settings, args: argparse.Namespace) -> None:
    from engine.stack import render_kamailio_config

    dest = render_kamailio_config(settings, Path(args.dir))
    print(f"rendered kamailio-config into {dest}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Veche conference engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the engine and portal (starts Postgres/Asterisk unless configured)") \
        .set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="apply SQL migrations to DATABASE_URL").set_defaults(func=cmd_migrate)
    ast = sub.add_parser("asterisk-config", help="Asterisk configuration")
    ast_sub = ast.add_subparsers(dest="action", required=True)
    render = ast_sub.add_parser("render", help="render asterisk-config/ templates into DIR")
    render.add_argument("dir")
    render.add_argument("--with-groups", action="store_true",
                        help="render veche-dialout with the number-plan groups stored in DATABASE_URL")
    render.add_argument("--node", default=None, metavar="ID",
                        help="with several nodes (VECHE_NODES, VECHE_NODE_HOSTS): render node ID (ast1, ast2, ...)")
    render.set_defaults(func=cmd_render)
    kamailio = sub.add_parser("kamailio-config", help="Kamailio configuration (the SIP front door of several nodes)")
    kamailio_sub = kamailio.add_subparsers(dest="action", required=True)
    kamailio_render = kamailio_sub.add_parser("render", help="render kamailio-config/ templates into DIR")
    kamailio_render.add_argument("dir")
    kamailio_render.set_defaults(func=cmd_render_kamailio)
    from engine.cli import add_commands

    add_commands(sub)  # account create, token create
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        settings = Settings.from_env()
        configure_logging(json_output=settings.log_json, verbose=args.verbose)
        args.func(settings, args)
    except VecheError as exc:
        print(f"veche: error: {exc}", file=sys.stderr)
        return 2
    except LeaseLost as exc:
        print(f"veche: {exc}", file=sys.stderr)
        return EXIT_LEASE_LOST
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
