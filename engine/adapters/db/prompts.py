"""SQL of the operator's voice-prompt replacements (one row per language and prompt name)."""

from __future__ import annotations

from typing import Any

import asyncpg

INFO_COLUMNS = "language, name, duration_ms, source_kind, source_bytes, uploaded_by, uploaded_at"


class PromptRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def list(self) -> list[dict[str, Any]]:
        """Every replacement, without its audio."""
        rows = await self.pool.fetch(f"SELECT {INFO_COLUMNS} FROM voice_prompts ORDER BY language, name")
        return [dict(row) for row in rows]

    async def files(self) -> list[tuple[str, str, bytes]]:
        """(language, name, audio) of every replacement."""
        rows = await self.pool.fetch("SELECT language, name, audio FROM voice_prompts")
        return [(row["language"], row["name"], bytes(row["audio"])) for row in rows]

    async def save(self, language: str, name: str, audio: bytes, duration_ms: int, source_kind: str,
                   source_bytes: int, uploaded_by: int) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            f"INSERT INTO voice_prompts (language, name, audio, duration_ms, source_kind, source_bytes, uploaded_by) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (language, name) DO UPDATE SET "
            f"audio = EXCLUDED.audio, duration_ms = EXCLUDED.duration_ms, source_kind = EXCLUDED.source_kind, "
            f"source_bytes = EXCLUDED.source_bytes, uploaded_by = EXCLUDED.uploaded_by, uploaded_at = now() "
            f"RETURNING {INFO_COLUMNS}",
            language, name, audio, duration_ms, source_kind, source_bytes, uploaded_by)
        return dict(row)

    async def delete(self, language: str, name: str) -> bool:
        done = await self.pool.execute("DELETE FROM voice_prompts WHERE language = $1 AND name = $2", language, name)
        return done != "DELETE 0"
