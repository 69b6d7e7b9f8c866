"""Errors a user can act on: the CLI prints them as one clear message, never as a traceback."""

from __future__ import annotations


class SalesForecastError(Exception):
    """Base class for every error that is meant for the user rather than a developer."""


class DataValidationError(SalesForecastError):
    """Bad input data; names the file and, where known, the line and column and what was expected."""

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        line: int | None = None,
        column: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file, self.problem, self.line, self.column, self.expected = (
            file,
            problem,
            line,
            column,
            expected,
        )
        where = file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        message = f"{where}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


class StoreError(SalesForecastError):
    """A storage backend (PostgreSQL, Parquet) could not be reached or written."""


class UnknownSeriesError(SalesForecastError):
    """A requested (store, dept) has no features in the online store."""

    def __init__(self, keys: list[tuple[int, int]]) -> None:
        self.keys = keys
        names = ", ".join(f"store {s} dept {d}" for s, d in keys[:10])
        more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
        super().__init__(f"unknown series: {names}{more} (no features in the online store)")


class OnlineStoreUnavailable(StoreError):
    """The online store did not answer; the API answers 503 and keeps running."""


class ModelNotFoundError(SalesForecastError):
    """No trained model where the settings point."""
