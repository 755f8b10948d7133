"""OpenAPI description of the operator's voice-prompt endpoints (merged into web/api/openapi.py)."""

from __future__ import annotations

from typing import Any

from engine.domain import prompts as rules
from engine.domain.speech import LANGUAGES
from web.api import spec_parts as spec


def prompt_schemas() -> dict[str, Any]:
    replacement = spec._obj({
        "language": {"type": "string", "enum": list(LANGUAGES)}, "name": {"type": "string", "enum": list(rules.NAMES)},
        "duration_ms": {"type": "integer"}, "source_kind": {"type": "string", "enum": list(rules.UPLOAD_KINDS)},
        "source_bytes": {"type": "integer"}, "uploaded_by": {"type": ["integer", "null"]},
        "uploaded_at": spec.DATETIME,
    }, ("language", "name", "duration_ms", "source_kind", "source_bytes", "uploaded_at"), closed=False)
    entry = spec._obj({
        "name": {"type": "string", "enum": list(rules.NAMES)},
        "kind": {"type": "string", "enum": ["core", "veche"],
                 "description": "core: replaces an Asterisk core sound; veche: a phrase the core sets lack "
                                "(composed from core sounds until uploaded)"},
        "replacement": {"oneOf": [spec._ref("PromptReplacement"), {"type": "null"}]},
    }, ("name", "kind", "replacement"), closed=False)
    return {
        "PromptReplacement": replacement,
        "PromptList": spec._obj({
            "limits": spec._obj({"max_bytes": {"type": "integer"}, "max_seconds": {"type": "number"}},
                                ("max_bytes", "max_seconds"), closed=False),
            "languages": spec._obj({lang: {"type": "array", "items": entry} for lang in LANGUAGES},
                                   tuple(LANGUAGES), closed=False),
        }, ("limits", "languages"), closed=False),
    }


def prompt_paths() -> dict[str, Any]:
    item = [{"name": "language", "in": "path", "required": True, "description": "voice language",
             "schema": {"type": "string", "enum": list(LANGUAGES)}},
            {"name": "name", "in": "path", "required": True, "description": "prompt name (fixed list)",
             "schema": {"type": "string", "enum": list(rules.NAMES)}}]
    upload = spec._op(
        "operator_upload_prompt", "Replace a prompt in one language: the body is a WAV or MP3 file (at most "
        "VECHE_PROMPT_MAX_BYTES and VECHE_PROMPT_MAX_SECONDS), converted with sox to 8 kHz mono WAV",
        {"200": spec._json("PromptReplacement", "the stored replacement")}, tag="operator", params=item,
        errors=("401", "403", "404", "413"))
    upload["requestBody"] = {"required": True, "content": {
        "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "/operator/prompts": {
            "get": spec._op("operator_list_prompts", "Every replaceable prompt per language, with its replacement",
                            {"200": spec._json("PromptList", "prompts")}, tag="operator", errors=("401", "403")),
        },
        "/operator/prompts/{language}/{name}": {
            "put": upload,
            "delete": spec._op("operator_delete_prompt", "Remove a replacement: the core sound (or the composition "
                               "from core sounds) is played again", spec.NO_CONTENT, tag="operator", params=item,
                               errors=("401", "403", "404")),
        },
    }
