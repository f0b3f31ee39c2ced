"""The RUSTC_WRAPPER fast path: what each rustc call is, and the native compiles cratecage confines."""
