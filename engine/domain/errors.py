"""Domain errors: what the services raise, independent of the protocol that caused them."""

from __future__ import annotations


class VecheError(Exception):
    """Base of every error the engine reports to a user or operator. A message with values is
    given as its catalogue id (``"%(count)d participants ..."``) and the values as keywords:
    ``str()`` is the English text, ``message_id`` and ``values`` let each entry point translate
    it (web.views.common.error_text)."""

    code = "error"

    def __init__(self, *args: object, **values: object) -> None:
        if values and len(args) == 1 and isinstance(args[0], str):
            super().__init__(args[0] % values)
            self.message_id = args[0]
            self.values = values
        else:
            super().__init__(*args)


class ConfigError(VecheError):
    """The engine's configuration is wrong or a required part cannot be reached."""

    code = "config"


class MigrationError(VecheError):
    """A SQL migration failed; nothing of it was applied."""

    code = "migration"


class AmiError(VecheError):
    """Asterisk refused an action or the AMI link is down."""

    code = "ami"


class AmiUnavailable(AmiError):
    """The AMI link is not up, so the action was not sent."""

    code = "ami_unavailable"


class ValidationError(VecheError):
    """User input is not acceptable; names the field."""

    code = "validation"

    def __init__(self, message: str, field: str | None = None, **values: object) -> None:
        super().__init__(message, **values)
        self.field = field


class NotFound(VecheError):
    code = "not_found"


class Forbidden(VecheError):
    code = "forbidden"


class StateConflict(VecheError):
    """The action does not apply to the object's current state (e.g. conference not running)."""

    code = "state_conflict"


class VersionConflict(StateConflict):
    """The object changed since the editor read it (its version moved on); ``current`` is the
    object as it is now, so the editor can be shown the other change."""

    code = "version_conflict"

    def __init__(self, message: str, current: object = None) -> None:
        super().__init__(message)
        self.current = current


class IdempotencyInProgress(StateConflict):
    """A request with the same Idempotency-Key is still being answered."""

    code = "idempotency_in_progress"


class IdempotencyKeyReused(VecheError):
    """An Idempotency-Key came back with another request than the one it was first used with."""

    code = "idempotency_key_reused"


class LimitExceeded(VecheError):
    code = "limit_exceeded"


class RateLimited(VecheError):
    code = "rate_limited"


class Unauthenticated(VecheError):
    """No valid credentials came with the request (unknown, malformed or revoked API token)."""

    code = "unauthenticated"


class NotActiveEngine(VecheError):
    """This engine does not hold the leader lease (a standby, or an active engine whose lease
    lapsed): it may not dial; the other engine of the pair does."""

    code = "not_active_engine"
