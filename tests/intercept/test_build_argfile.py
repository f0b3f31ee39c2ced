"""cargo hands rustc its arguments in an @argfile when they exceed the kernel's limit (here ~3 MB of
build.rustflags). The wrapper must classify through the argfile and pass the call on with the argfile
itself, since the expanded arguments would not fit on a command line either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo
from target_dirs import crate_outputs

pytestmark = pytest.mark.integration
PADDING = 150_000  # --cfg=pad_flag_NNNNNN x 150k = 3.3 MB


def test_huge_argument_lists_arrive_as_argfiles_and_build(cargo: Cargo, targets: Path, tmp_path: Path) -> None:
    flags = tmp_path / "flags.toml"
    flags.write_text("[build]\nrustflags = " + json.dumps([f"--cfg=pad_flag_{i:06d}" for i in range(PADDING)]))
    target = targets / "huge-flags"
    run = cargo(FIXTURES / "huge-flags", "build", "--config", str(flags), wrapped=True, target_dir=target)
    compiles = {e["crate"]: e for e in run.trace if e["crate"] in ("huge_flags", "huge_flags_macro")}
    assert compiles["huge_flags_macro"]["argfile"] and compiles["huge_flags_macro"]["kind"] == "proc-macro"
    assert compiles["huge_flags"]["argfile"] and compiles["huge_flags"]["kind"] == "host-library"
    # The lib only has ANSWER when the first and last padding cfg reached rustc through the argfile.
    [rmeta] = crate_outputs(target, "libhuge_flags-*.rmeta")
    assert b"ANSWER" in rmeta.read_bytes()
