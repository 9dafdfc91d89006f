"""The one error type backend creation raises (re-exported by :mod:`.select`)."""
from __future__ import annotations


class BackendError(RuntimeError):
    """A backend cannot be created; the message says why and how to fix it."""
