"""The operator's replacements of voice prompts per language: upload (WAV or MP3, checked and
converted with sox to what the nodes play), delete (back to the core sound), the list, and the
sound a node plays for a prompt. The replacements live in PostgreSQL and are written to the
prompts directory (VECHE_PROMPTS_DIR) that the nodes read at VECHE_PROMPTS_NODE_DIR."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.adapters.db.operator import OperatorRepository
from engine.adapters.db.prompts import PromptRepository
from engine.adapters.tools import run_tool
from engine.config import Settings
from engine.domain import prompts as rules
from engine.domain.errors import Forbidden, NotFound, ValidationError
from engine.domain.speech import LANGUAGES
from engine.services.audit import AuditLog

log = logging.getLogger(__name__)

SOX_TIMEOUT_SECONDS = 20.0


class PromptService:
    """See the module docstring; replacements and removals go to the audit log."""

    def __init__(self, settings: Settings, repo: PromptRepository, accounts: OperatorRepository,
                 audit: AuditLog) -> None:
        self.settings = settings
        self.repo = repo
        self.accounts = accounts
        self.audit = audit
        self.limits = rules.UploadLimits(settings.prompt_max_bytes, float(settings.prompt_max_seconds))
        self.directory = settings.prompts
        self.node_dir = settings.prompts_on_node
        self._replaced: dict[str, frozenset[str]] = {language: frozenset() for language in LANGUAGES}

    async def start(self) -> None:
        """Write every stored replacement to the prompts directory and drop the files of prompts
        that have none (only files named like a prompt of the catalogue are ever removed)."""
        await self.sync()

    async def sync(self) -> None:
        files = await self.repo.files()
        replaced: dict[str, set[str]] = {language: set() for language in LANGUAGES}
        for language, name, audio in files:
            if language in replaced and name in rules.NAMES:
                self._write(language, name, audio)
                replaced[language].add(name)
        for language in LANGUAGES:
            folder = self.directory / language
            if folder.is_dir():
                for path in folder.glob(f"*.{rules.NODE_EXTENSION}"):
                    if path.stem in rules.NAMES and path.stem not in replaced[language]:
                        path.unlink(missing_ok=True)
        self._replaced = {language: frozenset(names) for language, names in replaced.items()}

    # ----------------------------------------------------------------- what the nodes play

    def phrases(self, language: str) -> frozenset[str]:
        """The prompt names replaced in ``language``."""
        return self._replaced.get(language, frozenset())

    def sound(self, language: str, name: str) -> str:
        """What a node plays for prompt ``name`` in ``language``: the replacement's file when there
        is one, else the name itself (Asterisk's core sound of the channel's language)."""
        if name in self._replaced.get(language, frozenset()):
            return rules.node_path(self.node_dir, language, name)
        return name

    # ----------------------------------------------------------------- the operator's actions

    async def _operator(self, operator_id: int) -> None:
        account = await self.accounts.get_account(operator_id)
        if account is None or account["role"] != "operator" or account["blocked"]:
            raise Forbidden("only an operator may do this")

    async def list(self, operator_id: int) -> dict[str, list[dict[str, Any]]]:
        """Per language, every prompt name with its replacement (None: the core sound, or for a
        Veche phrase the composition from core sounds)."""
        await self._operator(operator_id)
        stored = {(row["language"], row["name"]): row for row in await self.repo.list()}
        return {language: [{"name": name, "kind": "veche" if name in rules.VECHE_PHRASES else "core",
                            "replacement": stored.get((language, name))} for name in rules.NAMES]
                for language in LANGUAGES}

    async def upload(self, operator_id: int, language: str, name: str, data: bytes) -> dict[str, Any]:
        """Check the upload (size, WAV or MP3 that sox reads, duration), convert it to the nodes'
        format, store and write it; the node plays it from the next prompt on."""
        await self._operator(operator_id)
        language, name = rules.validate_language(language), rules.validate_name(name)
        rules.check_size(len(data), self.limits)
        kind = rules.sniff_kind(data[:16])
        audio, seconds = await _convert(data, kind, self.limits)
        row = await self.repo.save(language, name, audio, max(1, round(seconds * 1000)), kind, len(data), operator_id)
        self._write(language, name, audio)
        self._replaced[language] = self._replaced[language] | {name}
        await self._record(operator_id, "prompt.uploaded", language=language, name=name, kind=kind,
                           bytes=len(data), duration_ms=row["duration_ms"])
        return row

    async def delete(self, operator_id: int, language: str, name: str) -> None:
        """Remove the replacement: the prompt is the core sound (or composed) again."""
        await self._operator(operator_id)
        language, name = rules.validate_language(language), rules.validate_name(name)
        if not await self.repo.delete(language, name):
            raise NotFound("this prompt has no replacement")
        self._replaced[language] = self._replaced[language] - {name}
        (self.directory / rules.file_name(language, name)).unlink(missing_ok=True)
        await self._record(operator_id, "prompt.deleted", language=language, name=name)

    async def _record(self, operator_id: int, action: str, **detail: Any) -> None:
        await self.audit.record(action, actor=f"operator:{operator_id}", actor_id=operator_id, detail=detail)

    def _write(self, language: str, name: str, audio: bytes) -> None:
        """Write atomically (a node never plays half a file), readable by the nodes' Asterisk."""
        target = self.directory / rules.file_name(language, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        scratch = target.with_suffix(".part")
        scratch.write_bytes(audio)
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)


async def _convert(data: bytes, kind: str, limits: rules.UploadLimits) -> tuple[bytes, float]:
    """(the nodes' WAV, its duration in seconds) of an upload sox must read as ``kind`` audio."""
    with tempfile.TemporaryDirectory(prefix="veche-prompt-") as scratch:
        source, target = Path(scratch) / f"upload.{kind}", Path(scratch) / f"prompt.{rules.NODE_EXTENSION}"
        source.write_bytes(data)
        try:
            await _sox("soxi", "-t", str(source))
            seconds = float(await _sox("soxi", "-D", str(source)) or 0)
        except (RuntimeError, ValueError):
            raise ValidationError("sox cannot read the file as audio", "file") from None
        rules.check_duration(seconds, limits)
        try:
            await _sox("sox", "-V1", str(source), "-r", str(rules.NODE_RATE), "-c", "1", "-b", "16",
                       "-e", "signed-integer", str(target))
            seconds = float(await _sox("soxi", "-D", str(target)) or 0)
        except (RuntimeError, ValueError):
            raise ValidationError("sox cannot convert the file", "file") from None
        rules.check_duration(seconds, limits)
        return target.read_bytes(), seconds


async def _sox(*argv: str) -> str:
    try:
        return await run_tool(*argv, timeout=SOX_TIMEOUT_SECONDS)
    except RuntimeError as exc:
        log.info("an upload was refused: %s", exc)
        raise

