"""A wasm compile's private directories (shim.compile.dirs) and the replay stamp that verifies what they
published (shim.compile.replay.Replayer._fresh): unit tests of the pure file handling."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from shim.compile.dirs import CompileDirs
from shim.compile.replay import Replayer


def test_the_closure_is_linked_and_nothing_else(tmp_path: Path) -> None:
    shared = tmp_path / "wasm-deps"
    shared.mkdir()
    for name in ("liba-1.rlib", "libb-2.rlib", "libother-3.rlib", "a-1.d"):
        (shared / name).write_bytes(name.encode())
    with CompileDirs(str(tmp_path)) as dirs:
        linked = dirs.link([str(shared / "liba-1.rlib"), str(shared / "libb-2.rlib")])
        assert sorted(os.listdir(dirs.deps)) == ["liba-1.rlib", "libb-2.rlib"]
        assert Path(linked[str(shared / "liba-1.rlib")]).read_bytes() == b"liba-1.rlib"
        root = dirs.root
    assert not os.path.exists(root)


def test_publish_copies_outputs_with_their_sha256_and_drops_the_dep_info(tmp_path: Path) -> None:
    shared = tmp_path / "wasm-deps"
    shared.mkdir()
    with CompileDirs(str(tmp_path)) as dirs:
        Path(dirs.out, "libx-1.rlib").write_bytes(b"rlib bytes")
        Path(dirs.out, "x-1.d").write_text("# env-dep:TOKEN=secret\n")
        digests = dirs.publish(str(shared))
    assert digests == {"libx-1.rlib": hashlib.sha256(b"rlib bytes").hexdigest()}
    assert sorted(os.listdir(shared)) == ["libx-1.rlib"]


def _stamped(tmp_path: Path, key: str = "k") -> Path:
    out = tmp_path / "liby-1.rlib"
    out.write_bytes(b"good")
    (tmp_path / "liby-1.rlib.stamp").write_text(json.dumps(
        {"key": key, "outputs": {out.name: hashlib.sha256(b"good").hexdigest()}}))
    return out


def test_a_stamp_is_fresh_only_while_its_outputs_keep_their_hash(tmp_path: Path) -> None:
    out = _stamped(tmp_path)
    assert Replayer._fresh(str(out), "k")
    assert not Replayer._fresh(str(out), "other key")
    out.write_bytes(b"TROJAN")
    assert not Replayer._fresh(str(out), "k")


def test_an_old_or_foreign_stamp_is_never_fresh(tmp_path: Path) -> None:
    out = _stamped(tmp_path)
    (tmp_path / "liby-1.rlib.stamp").write_text("k")  # cratecage < 0.6: the key alone
    assert not Replayer._fresh(str(out), "k")
    (tmp_path / "liby-1.rlib.stamp").write_text(json.dumps({"key": "k", "outputs": {"../liby-1.rlib": "0"}}))
    assert not Replayer._fresh(str(out), "k")
