"""One error type for bad input: it names the file, the row and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. str() is one line: 'FILE:ROW: problem' (row omitted when it does not apply).

    Rows are counted as lines of the file, the header being line 1, so a user can jump to them.
    """

    def __init__(self, path: str | Path, problem: str, row: int | None = None):
        self.path, self.problem, self.row = str(path), problem, row
        where = f"{self.path}:{row}" if row is not None else self.path
        super().__init__(f"{where}: {problem}")
