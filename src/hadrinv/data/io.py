"""Writers that never leave a half-written file: write to a temporary name, then rename.

The temporary file comes from mkstemp, which creates it readable by its owner only (0600); it is given the
mode a plain open() would have (0666 less the umask) before the rename, so results are as readable as the
plots beside them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


def _umask() -> int:
    """The process umask. Linux shows it in /proc; elsewhere os.umask has to set it to read it (and puts it back),
    which is brief but not thread-safe, hence the /proc path first."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_default_mode(path: str | Path) -> None:
    """chmod a temporary file from mkstemp to the mode open() would have given it."""
    os.chmod(path, 0o666 & ~_umask())


def atomic_write_file(path: str | Path, write: Callable[[str], None]) -> Path:
    """write(temporary sibling path) with any writer (torch, pyarrow, uproot), then rename it to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        give_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_file(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_csv(path: str | Path, header: list[str], rows) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def atomic_torch_save(obj, path: str | Path) -> Path:
    return atomic_write_file(path, lambda tmp: torch.save(obj, tmp))


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely: truncated, tampered with, or not written by hadrinv."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """Checkpoints hold tensors and plain containers only (weights_only: a file that needs more is refused,
    never unpickled)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... with advice we must not give
        kind = (
            "not a checkpoint of tensors and plain values"
            if "weights_only" in str(exc)
            else "unreadable (truncated or damaged)"
        )
        raise CheckpointError(f"{path}: {kind}; delete it to recompute that part, or run without --resume") from None
