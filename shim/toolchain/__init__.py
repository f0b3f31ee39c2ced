"""Which compiler, its wasm32-wasip1 sysroot, first-use provisioning, the std facade build."""
