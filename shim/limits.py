"""Limits on one sandboxed run, each overridable by an environment variable (tests use small ones).

    CRATECAGE_LIMIT_TIME     wall clock              default 15 min  ("90", "2m", "500ms")
    CRATECAGE_LIMIT_MEMORY   linear memory           default 1 GiB   ("512MiB", "2GiB", bytes)
    CRATECAGE_LIMIT_STDOUT   captured stdout         default 64 MiB
    CRATECAGE_LIMIT_STDERR   forwarded stderr        default 64 MiB
    CRATECAGE_LIMIT_DISK     bytes added to OUT_DIR, the temp dir and writable grants   default 4 GiB
                             (CRATECAGE_LIMIT_OUT_DIR, its name before it counted more than OUT_DIR, is an alias)
    CRATECAGE_LIMIT_CHILD_TIME    wall clock of each program the run starts (shim.host.spawn)  default 15 min
    CRATECAGE_LIMIT_PROCESSES     live native processes the run has at once (programs, probes and all
                                  they start)                                                   default 256
    CRATECAGE_LIMIT_CHILD_MEMORY  their summed resident memory                                  default 4 GiB

The last three exist because granted programs are native: wasmtime's store limits bound only the guest.
RLIMIT_NPROC would not do for processes (it counts every process of the user, and root ignores it), so the
supervisor (shim.build.run) counts the run's descendants itself (shim.confine.reaper).
"""

from __future__ import annotations

import os
import re
from typing import Mapping

from shim.errors import UsageError
from shim.record import record

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


@record(frozen=True)
class Limits:
    time_s: float = 900.0  # a -sys crate compiling a C++ library natively takes minutes
    memory: int = 1 << 30
    stdout: int = 64 << 20
    stderr: int = 64 << 20
    disk: int = 4 << 30
    child_time_s: float = 900.0
    processes: int = 256
    child_memory: int = 4 << 30


# field -> (environment variable, parser kind); a field's later rows are aliases the first one beats
ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "time_s": (("CRATECAGE_LIMIT_TIME", "time"),),
    "memory": (("CRATECAGE_LIMIT_MEMORY", "size"),),
    "stdout": (("CRATECAGE_LIMIT_STDOUT", "size"),),
    "stderr": (("CRATECAGE_LIMIT_STDERR", "size"),),
    "disk": (("CRATECAGE_LIMIT_DISK", "size"), ("CRATECAGE_LIMIT_OUT_DIR", "size")),
    "child_time_s": (("CRATECAGE_LIMIT_CHILD_TIME", "time"),),
    "processes": (("CRATECAGE_LIMIT_PROCESSES", "count"),),
    "child_memory": (("CRATECAGE_LIMIT_CHILD_MEMORY", "size"),),
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


def parse_count(text: str) -> int:
    m = re.fullmatch(r"\s*([1-9][0-9]*)\s*", text)
    if not m:
        raise ValueError(f"not a count above zero: {text!r} (examples: 64, 512)")
    return int(m.group(1))


_PARSERS = {"time": parse_duration, "size": parse_size, "count": parse_count}


def set_in_env(name: str, environ: Mapping[str, str]) -> bool:
    """Whether a variable (or an alias) sets field `name`: then it beats the policy's `limits`."""
    return any(environ.get(var) for var, _ in ENV[name])


def from_env(environ: Mapping[str, str] = os.environ) -> Limits:
    values: dict[str, float | int] = {}
    for name, rows in ENV.items():
        for var, kind in rows:
            raw = environ.get(var)
            if not raw:
                continue
            try:
                values[name] = _PARSERS[kind](raw)
            except ValueError as err:
                message = f"{var}: {err}"
                raise UsageError(message, once=message) from None  # every build script meets it: said once
            break
    return Limits(**values)  # type: ignore[arg-type]
