"""Build scripts: compiled for wasm, run in the sandbox, their directives checked before cargo sees them."""
