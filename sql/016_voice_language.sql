-- The voice language of each conference (what its callers hear) and of each template.
ALTER TABLE conferences ADD COLUMN language text NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'en'));
-- A template without a language plans in the owner's portal language.
ALTER TABLE templates ADD COLUMN language text CHECK (language IS NULL OR language IN ('ru', 'en'));
