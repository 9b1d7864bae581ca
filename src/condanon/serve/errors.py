"""The one error the service's handlers raise: an HTTP status and a one-line message (answered as JSON)."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as ``{"error": message}`` with ``status`` (and ``headers``, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())  # one line, whatever the cause said
        self.headers = headers or {}

    def __reduce__(self) -> tuple[type[ApiError], tuple[int, str, dict[str, str]]]:
        return (ApiError, (self.status, self.message, self.headers))  # it crosses from worker processes whole
