"""The error tree every layer raises; none of it knows about HTTP.

    VincentError                       code, message, details
    ├── ValidationFailed               bad input (VALIDATION_ERROR)
    ├── BadRequest                     a well-formed request that cannot be done (BAD_REQUEST)
    │   ├── RuleNotEditable
    │   ├── RuleNotCancelable
    │   ├── RuleLimitReached
    │   └── InvalidStatusFilter
    ├── Unauthorized                   missing / malformed / unknown / revoked API key
    ├── Forbidden                      an authenticated caller that may not do this
    ├── NotFound                       missing, or another tenant's (never a 403)
    │   ├── RuleNotFound
    │   └── SecretNotFound
    ├── Conflict
    │   └── ExecutionModeMismatch      recorded in paper mode, asked to run live (or back)
    ├── InvalidSecretType              the secret is not a POLYMARKET_WALLET
    ├── TooManyRequests                a client past a limit (RATE_LIMIT_EXCEEDED)
    ├── NotImplementedHere             an original endpoint this server cannot serve
    └── ConfigurationError             settings that cannot work

The skill's trading errors (transient vs permanent) live in
``vincent.skills.polymarket.errors`` and also derive from ``VincentError``.
``api/errors.py`` is the only place that maps these classes to status codes.
"""

from __future__ import annotations

from typing import Any


class VincentError(Exception):
    """Base of every error the service raises on purpose."""

    code: str = "INTERNAL_ERROR"
    default_message: str = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class ValidationFailed(VincentError):
    code = "VALIDATION_ERROR"
    default_message = "Validation failed"


class BadRequest(VincentError):
    code = "BAD_REQUEST"
    default_message = "Bad request"


class RuleNotEditable(BadRequest):
    default_message = "Only active rules can be updated"


class RuleNotCancelable(BadRequest):
    default_message = "Only active, failed, or pending approval rules can be canceled"


class RuleLimitReached(BadRequest):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Maximum active rules limit reached ({limit}). "
            "Cancel existing rules before creating new ones."
        )
        self.limit = limit


class InvalidStatusFilter(BadRequest):
    def __init__(self, raw: str) -> None:
        super().__init__(f"Invalid status filter: {raw}")


class Unauthorized(VincentError):
    code = "UNAUTHORIZED"
    default_message = "Unauthorized"


class Forbidden(VincentError):
    code = "FORBIDDEN"
    default_message = "Forbidden"


class NotFound(VincentError):
    code = "NOT_FOUND"
    default_message = "Resource not found"


class RuleNotFound(NotFound):
    default_message = "Rule not found"


class SecretNotFound(NotFound):
    default_message = "Secret not found"


class Conflict(VincentError):
    code = "CONFLICT"
    default_message = "Conflict"


class ExecutionModeMismatch(Conflict):
    """An action, approval or rule recorded in one execution mode, run in the other."""

    code = "EXECUTION_MODE_MISMATCH"

    def __init__(self, what: str, recorded: str, running: str) -> None:
        super().__init__(
            f"{what} was made in {recorded} mode and this process runs in {running} mode: "
            f"it executes only in {recorded} mode (EXECUTION_MODE={recorded})",
            details={"recordedMode": recorded, "processMode": running},
        )


class InvalidSecretType(VincentError):
    code = "INVALID_TYPE"
    default_message = "Secret is not a POLYMARKET_WALLET"


class TooManyRequests(VincentError):
    code = "RATE_LIMIT_EXCEEDED"
    default_message = "Too many requests"


class NotImplementedHere(VincentError):
    code = "NOT_IMPLEMENTED"
    default_message = "Not implemented on this server"


class ConfigurationError(VincentError):
    code = "CONFIGURATION_ERROR"
    default_message = "Invalid configuration"
