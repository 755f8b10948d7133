-- The operator's replacements of voice prompts, per language: the file as the nodes play it
-- (8 kHz mono 16-bit WAV). The engine writes them to VECHE_PROMPTS_DIR at start and on change;
-- a prompt without a row is played from Asterisk's core sounds (or composed from them).
CREATE TABLE voice_prompts (
    language      text NOT NULL CHECK (language IN ('ru', 'en')),
    name          text NOT NULL CHECK (name ~ '^[a-z0-9-]{1,40}$'),
    audio         bytea NOT NULL,
    duration_ms   integer NOT NULL CHECK (duration_ms > 0),
    source_kind   text NOT NULL CHECK (source_kind IN ('wav', 'mp3')),
    source_bytes  integer NOT NULL CHECK (source_bytes > 0),
    uploaded_by   bigint REFERENCES accounts(id) ON DELETE SET NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (language, name)
);
