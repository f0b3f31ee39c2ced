"""SHA-256 of small inputs (cache keys, marker names) without hashlib's start-up cost.

`import hashlib` loads OpenSSL's libcrypto: ~4.5 ms, more than all the rest of the wrapper's `rustc -vV`
answer and of a proc-macro unit's toolchain check. CPython's own SHA-256 module starts in ~0.1 ms and gives
the same digest; it is ~6x slower per byte than OpenSSL's, so large inputs (wasm modules, copied outputs)
keep using hashlib. Standard library only.
"""

try:
    from _sha2 import sha256 as _sha256  # CPython 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # CPython 3.10, 3.11
    except ImportError:  # another implementation: the portable way
        from hashlib import sha256 as _sha256

__all__ = ["sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data` (meant for inputs of a few kilobytes)."""
    return _sha256(data).hexdigest()
