"""Both portal languages stay complete: every catalogue entry has a Russian translation, and the
messages the engine builds at run time reach the portal as catalogue ids with values (never as
English f-strings that the catalogue cannot translate)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from engine.domain import errors
from web.i18n import load_catalogs

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "web" / "locale"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdrf]")
# The same in both languages: abbreviations and product words Russian text uses as they are.
SAME_IN_RUSSIAN = {"E-mail", "AMI", "HTML"}

# Files whose errors never reach a portal page, so their messages may be English sentences with
# values built in place. Each with why:
ENGLISH_ONLY = {
    # settings are read before the web server starts; the error stops the engine on the console
    "engine/config.py": "start-up settings, printed by the CLI",
    # builds and starts the private Asterisk/PostgreSQL of `./veche run`/`./veche test`
    "engine/stack.py": "start-up of the local stack, printed by the CLI",
    "engine/__main__.py": "command line entry point",
    "engine/cli.py": "command line output",
    "engine/app.py": "start-up wiring (no database configured)",
    # connecting to PostgreSQL and migrating happen before any page is served
    "engine/adapters/db/__init__.py": "database connection at start",
    "engine/adapters/db/migrations.py": "`veche migrate` on the command line",
    # PIN lengths come from settings (VECHE_*_PIN_LENGTH) and are checked at start
    "engine/domain/pins.py": "settings check at start",
    # the /metrics listener is opened at start; a busy port stops the engine
    "web/metrics.py": "start-up of the metrics listener",
    # the public API answers machine clients in English (its JSON error messages are not
    # translated); the portal never calls these parsers
    "web/api/parse.py": "API JSON errors, English by design",
    "web/api/ratelimit.py": "API JSON errors, English by design",
    "web/api/events.py": "API JSON errors, English by design",
}
# Error classes that only stop the engine at start or fail a CLI command.
START_UP_ERRORS = {"ConfigError", "MigrationError"}


def _catalogue(language: str) -> Catalog:
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp, locale=language)


def _is_code(message: str) -> bool:
    """A string without words to translate: numbers, codes, placeholders only."""
    return not re.search(r"[A-Za-z]{2,}", PLACEHOLDER.sub("", message))


def test_every_russian_entry_is_translated() -> None:
    untranslated = []
    for message in _catalogue("ru"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for source, translated in zip(ids, strings, strict=False):
            if not translated or (translated == source and source not in SAME_IN_RUSSIAN
                                  and not _is_code(source)):
                untranslated.append(source)
    assert untranslated == []


def test_both_catalogues_hold_the_same_ids_with_the_same_placeholders() -> None:
    russian, english = _catalogue("ru"), _catalogue("en")
    assert {m.id for m in russian} == {m.id for m in english}
    wrong = []
    for message in russian:
        if message.id and isinstance(message.id, str):
            if sorted(PLACEHOLDER.findall(message.id)) != sorted(PLACEHOLDER.findall(message.string)):
                wrong.append(message.id)
    assert wrong == []


def _python_files() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path)))
            for top in ("engine", "web") for path in sorted((ROOT / top).rglob("*.py"))]


def _error_classes(files: list[tuple[str, ast.Module]]) -> set[str]:
    """VecheError and every class derived from it in engine/ and web/."""
    names = {name for name, value in vars(errors).items()
             if isinstance(value, type) and issubclass(value, errors.VecheError)}
    grown = True
    while grown:
        grown = False
        for _, tree in files:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names and any(
                        isinstance(base, ast.Name | ast.Attribute) and
                        (base.id if isinstance(base, ast.Name) else base.attr) in names for base in node.bases):
                    names.add(node.name)
                    grown = True
    return names


def _error_calls(files: list[tuple[str, ast.Module]]):
    classes = _error_classes(files)
    for path, tree in files:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in classes:
                    yield path, name, node


def _built_in_place(argument: ast.expr) -> bool:
    """An f-string, ``"..." % x``, ``"..." + x`` or ``"...".format(x)`` anywhere in the message."""
    for node in ast.walk(argument):
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add)):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            return True
    return False


def test_no_error_message_is_built_in_place_where_the_portal_shows_it() -> None:
    built = [f"{path}:{node.lineno} {name}" for path, name, node in _error_calls(_python_files())
             if path not in ENGLISH_ONLY and name not in START_UP_ERRORS and _built_in_place(node.args[0])]
    assert built == [], "give a catalogue id with %(name)s values instead: " + ", ".join(built)


def test_every_literal_error_message_is_in_the_catalogue() -> None:
    catalogue = load_catalogs()["ru"]
    missing = []
    for path, name, node in _error_calls(_python_files()):
        argument = node.args[0]
        if path in ENGLISH_ONLY or name in START_UP_ERRORS or path.startswith("web/api/"):
            continue  # the API's own messages are English for machine clients
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            if catalogue.gettext(argument.value) == argument.value and not _is_code(argument.value):
                missing.append(f"{path}:{node.lineno} {argument.value!r}")
    assert missing == []


@pytest.mark.parametrize("error", [
    errors.ValidationError("%(number)s is planned twice", "participants[1].number", number="375291000001"),
    errors.LimitExceeded("%(count)d participants planned but the limit is %(limit)d", count=3, limit=2),
    errors.ValidationError("at most %(most)d patterns", "patterns", most=50),
    errors.ValidationError("the pattern %(pattern)s is malformed", "patterns[0]", pattern="_37[5"),
    errors.AmiError("%(action)s refused by %(node)s: %(reason)s", action="ConfbridgeKick", node="n1",
                    reason="No Conference by that name found."),
])
def test_run_time_messages_read_in_russian(error: errors.VecheError) -> None:
    russian = load_catalogs()["ru"]
    text = russian.gettext(error.message_id) % error.values
    assert text != str(error) and re.search("[а-яё]", text)


def test_an_asterisk_refusal_reads_in_russian_with_its_reason() -> None:
    """error_text translates the values too: Asterisk's reason in an AMI refusal has an entry."""
    russian = load_catalogs()["ru"]
    error = errors.AmiError("%(action)s refused by %(node)s: %(reason)s", action="ConfbridgeMute", node="n1",
                            reason="No Channel by that name found in Conference.")
    values = {k: russian.gettext(v) for k, v in error.values.items()}
    text = russian.gettext(error.message_id) % values
    assert "No Channel" not in text and "в конференции нет такого канала" in text
