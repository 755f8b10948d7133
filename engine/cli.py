"""The account and API-token subcommands of ``python -m engine`` (an operator's first steps:
``account create 375291234567 --password-stdin [--role operator --admin]``, ``account admin PHONE
[--off]``, then ``token create 375291234567 [--expires DAYS]``; ``token revoke ID``). They open
DATABASE_URL and call the same services as the portal; they need no Asterisk."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from engine import eventloop
from engine.config import Settings
from engine.domain.errors import ValidationError

if TYPE_CHECKING:
    from engine.services.container import AdminServices


def _quiet(args: argparse.Namespace) -> None:
    """Only warnings and errors on stderr (unless -v): the output is the command's answer."""
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.WARNING)


def admin_services(settings: Settings) -> AbstractAsyncContextManager[AdminServices]:
    """The composition root's services for these commands (engine/app.py). Imported here, not at
    the top: ``python -m engine asterisk-config render`` also builds this parser, in the Asterisk
    image, which has the standard library and jinja2 only."""
    from engine.app import admin_services as build

    return build(settings)


def _one_line(exc: ValidationError) -> ValidationError:
    """A validation error whose message names its field, for a one-line CLI error."""
    return ValidationError(f"{exc.field}: {exc}" if exc.field else str(exc), exc.field)


def cmd_account_create(settings: Settings, args: argparse.Namespace) -> None:
    _quiet(args)
    if not args.password_stdin:
        raise ValidationError("give the password on standard input with --password-stdin", "password")
    password = sys.stdin.readline().rstrip("\r\n")

    async def go() -> None:
        async with admin_services(settings) as services:
            try:
                account = await services.accounts.create(
                    args.phone, password, name=args.name, email=args.email, language=args.language, role=args.role,
                    admin=args.admin)
            except ValidationError as exc:
                raise _one_line(exc) from None
        admin = ", admin" if account.admin else ""
        print(f"created account {account.phone} (id {account.id}, role {account.role}{admin})")

    eventloop.run(go())


def cmd_account_admin(settings: Settings, args: argparse.Namespace) -> None:
    _quiet(args)

    async def go() -> None:
        async with admin_services(settings) as services:
            try:
                account = await services.accounts.set_admin(args.phone, not args.off)
            except ValidationError as exc:
                raise _one_line(exc) from None
        state = "is an admin" if account.admin else "is no longer an admin"
        print(f"operator {account.phone} (id {account.id}) {state}")

    eventloop.run(go())


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> None:
    _quiet(args)
    async def go() -> None:
        async with admin_services(settings) as services:
            try:
                issued = await services.tokens.issue_for_phone(args.phone, args.name,
                                                                  expires_in_days=args.expires)
            except ValidationError as exc:
                raise _one_line(exc) from None
        print(issued.secret)  # stdout holds only the token, so scripts can capture it
        until = f", expires {issued.token.expires_at:%Y-%m-%d %H:%M} UTC" if issued.token.expires_at else ""
        print(f"token id {issued.token.id} for {args.phone}{until}: shown once, keep it secret "
              f"(revoke with: python -m engine token revoke {issued.token.id})", file=sys.stderr)

    eventloop.run(go())


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> None:
    _quiet(args)
    async def go() -> None:
        async with admin_services(settings) as services:
            token = await services.tokens.revoke(None, args.token_id)
        print(f"token {token.id} ({token.prefix}...) revoked")

    eventloop.run(go())


def add_commands(sub: Any) -> None:
    """Register ``account create`` and ``token create`` on the main parser's subparsers."""
    account = sub.add_parser("account", help="customer and operator accounts")
    account_sub = account.add_subparsers(dest="action", required=True)
    create = account_sub.add_parser("create", help="create an account (password read from standard input)")
    create.add_argument("phone", help="the phone account, 375XXXXXXXXX")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--name", default="")
    create.add_argument("--email", default=None)
    create.add_argument("--language", default="ru", choices=("ru", "en"))
    create.add_argument("--role", default="customer", choices=("customer", "operator"))
    create.add_argument("--admin", action="store_true",
                        help="with --role operator: may block, reset or delete other operators")
    create.set_defaults(func=cmd_account_create)
    admin = account_sub.add_parser("admin", help="give an operator the admin flag (--off takes it away)")
    admin.add_argument("phone", help="the operator's phone account, 375XXXXXXXXX")
    admin.add_argument("--off", action="store_true", help="take the admin flag away")
    admin.set_defaults(func=cmd_account_admin)

    token = sub.add_parser("token", help="JSON API bearer tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    issue = token_sub.add_parser("create", help="issue an API token for an account and print it")
    issue.add_argument("phone", help="the phone account, 375XXXXXXXXX")
    issue.add_argument("--name", default="", help="a label to tell tokens apart")
    issue.add_argument("--expires", type=int, default=None, metavar="DAYS",
                       help="the token stops working after this many days (default: never)")
    issue.set_defaults(func=cmd_token_create)
    revoke = token_sub.add_parser("revoke", help="revoke an API token by its id (shown when it was created)")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(func=cmd_token_revoke)
