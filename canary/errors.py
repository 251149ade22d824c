"""Exceptions raised by the canary library.

The command line maps each to a clean message and a non-zero exit, the web layer to an
HTTP status. Every message is a sentence a steward can act on.

    CanaryError
    ├── RegistryError
    │   ├── NotInitialisedError
    │   └── NotFoundError
    ├── PoolError
    │   ├── InvalidPhoneError
    │   ├── InvalidDomainError
    │   └── PoolTooSmallError
    ├── InputError
    │   ├── EncodingError
    │   ├── RaggedFileError
    │   ├── EmptyFileError
    │   ├── SchemaError
    │   └── InvalidEventError
    ├── OutputError
    ├── AuditError
    └── AccessError
"""

from __future__ import annotations


class CanaryError(Exception):
    """Base class of every error the library raises on purpose."""


class RegistryError(CanaryError):
    """The registry database cannot be used as asked."""


class NotInitialisedError(RegistryError):
    """The registry database has not been created or is not at the current schema."""


class NotFoundError(RegistryError):
    """A named export, client, list or account does not exist."""


class PoolError(CanaryError):
    """The pool of owned tokens cannot serve the request."""


class InvalidPhoneError(PoolError):
    """A phone number given for the pool is not a valid Japanese number."""


class InvalidDomainError(PoolError):
    """A mail domain given for the pool is not a valid domain name."""


class PoolTooSmallError(PoolError):
    """The pool cannot give an export tokens unique to it."""


class InputError(CanaryError):
    """An input list cannot be read or understood."""


class EncodingError(InputError):
    """The input's text encoding is unknown or mixed."""


class RaggedFileError(InputError):
    """Rows of the input do not have the same number of fields."""


class EmptyFileError(InputError):
    """The input holds no rows of people."""


class SchemaError(InputError):
    """The columns of the input cannot be recognised as a list of people."""


class InvalidEventError(InputError):
    """An event (webhook, call-detail row, manual entry) is malformed or incomplete."""


class OutputError(CanaryError):
    """The seeded file cannot be written where asked."""


class AuditError(CanaryError):
    """The audit chain is broken or cannot be extended."""


class AccessError(CanaryError):
    """The caller's token or role does not allow what it asked for."""
