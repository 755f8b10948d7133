"""Plain domain types and rules: no I/O here."""
