"""One helper for the fields of the trainer's config dataclasses.

Each field carries its one-line ``help`` (shown by the command line and the README's configuration
reference, which are generated from the fields) and optional metadata: ``choices`` (the registry its
value must be a key of) and ``none_as`` (how None is written in a TOML file, which has no null).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

__all__ = ["config_field"]


def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with ``default``, its help text and metadata."""
    return field(default=default, metadata={"help": help, **metadata})
