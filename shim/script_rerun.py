"""A replayed library's build script, run again for wasm32-wasip1 (stub)."""

from __future__ import annotations

from shim import journal, wasm_graph

if False:  # typing only
    from shim.replay import Replayer


def on_wasm(replayer: Replayer, entry: journal.Entry, pkg: wasm_graph.Package) -> journal.Entry:
    from shim.replay import ReplayError

    raise ReplayError(f"build-dependency {pkg.title} (of the build script of {replayer.consumer}): its "
                      f"dependencies on wasm32-wasip1 differ from the host's and its build script ran for the "
                      f"host only, so what it printed (cfgs) may describe the host: cratecage cannot compile "
                      f"it for wasm32-wasip1")
