"""Limits on one sandboxed run, each overridable by an environment variable (tests use small ones).

    CRATECAGE_LIMIT_TIME     wall clock              default 120 s   ("90", "2m", "500ms")
    CRATECAGE_LIMIT_MEMORY   linear memory           default 1 GiB   ("512MiB", "2GiB", bytes)
    CRATECAGE_LIMIT_STDOUT   captured stdout         default 64 MiB
    CRATECAGE_LIMIT_STDERR   forwarded stderr        default 64 MiB
    CRATECAGE_LIMIT_OUT_DIR  bytes added to OUT_DIR  default 4 GiB
    CRATECAGE_LIMIT_CHILD_TIME  wall clock of each program the run starts (shim.host_spawn)  default 300 s
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from shim.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Limits:
    time_s: float = 120.0
    memory: int = 1 << 30
    stdout: int = 64 << 20
    stderr: int = 64 << 20
    out_dir: int = 4 << 30
    child_time_s: float = 300.0


# field -> (environment variable, parser kind)
_ENV: dict[str, tuple[str, str]] = {
    "time_s": ("CRATECAGE_LIMIT_TIME", "time"),
    "memory": ("CRATECAGE_LIMIT_MEMORY", "size"),
    "stdout": ("CRATECAGE_LIMIT_STDOUT", "size"),
    "stderr": ("CRATECAGE_LIMIT_STDERR", "size"),
    "out_dir": ("CRATECAGE_LIMIT_OUT_DIR", "size"),
    "child_time_s": ("CRATECAGE_LIMIT_CHILD_TIME", "time"),
}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 512MiB, 2GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise ValueError(f"not a duration: {text!r} (examples: 120, 90s, 5m, 500ms)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


def from_env(environ: Mapping[str, str] = os.environ) -> Limits:
    values: dict[str, float | int] = {}
    for name, (var, kind) in _ENV.items():
        raw = environ.get(var)
        if not raw:
            continue
        try:
            values[name] = parse_duration(raw) if kind == "time" else parse_size(raw)
        except ValueError as err:
            raise UsageError(f"{var}: {err}") from None
    return Limits(**values)  # type: ignore[arg-type]
