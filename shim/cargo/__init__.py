"""What cargo tells us: rustc's arguments, the target-dir layout, the journal, per-crate variables."""
