"""The per-user cache of wasm compiles (shim.compile.shared_cache): keys, and that only an intact entry is
ever copied into a build. Unit tests of the file handling; tests/macro/test_macro_cache.py builds through it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from shim.compile import shared_cache


def _entry(tmp_path: Path, key: str = "ab" * 32) -> tuple[str, Path]:
    src = tmp_path / "out"
    src.mkdir()
    (src / "libx-1.rlib").write_bytes(b"rlib bytes")
    shared_cache.store(str(tmp_path / "cache"), key, str(src),
                       {"libx-1.rlib": hashlib.sha256(b"rlib bytes").hexdigest()}, {"deps": ["a.rs"]})
    return key, tmp_path / "cache" / shared_cache.DIR / key[:2] / key


def test_a_key_covers_parts_and_file_contents_and_is_none_without_every_part(tmp_path: Path) -> None:
    lib = tmp_path / "lib.rlib"
    lib.write_bytes(b"one")
    first = shared_cache.key("argv", files=[str(lib)])
    assert first == shared_cache.key("argv", files=[str(lib)])
    assert first != shared_cache.key("argv2", files=[str(lib)])
    assert shared_cache.key("ab", "c") != shared_cache.key("a", "bc")  # parts are length-prefixed
    lib.write_bytes(b"two")
    assert shared_cache.key("argv", files=[str(lib)]) != first
    assert shared_cache.key("argv", None, files=[str(lib)]) is None  # a dependency without a key
    assert shared_cache.key("argv", files=[str(tmp_path / "missing")]) is None


def test_a_stored_entry_is_copied_back_with_its_digests_and_record(tmp_path: Path) -> None:
    key, _where = _entry(tmp_path)
    dest = tmp_path / "wasm-deps"
    kept = shared_cache.fetch(str(tmp_path / "cache"), key, str(dest))
    assert kept == ({"libx-1.rlib": hashlib.sha256(b"rlib bytes").hexdigest()}, {"deps": ["a.rs"]})
    assert (dest / "libx-1.rlib").read_bytes() == b"rlib bytes"
    assert shared_cache.fetch(str(tmp_path / "cache"), "cd" * 32, str(dest)) is None


def test_an_entry_whose_bytes_changed_is_never_copied(tmp_path: Path) -> None:
    key, where = _entry(tmp_path)
    (where / "libx-1.rlib").write_bytes(b"planted")
    dest = tmp_path / "wasm-deps"
    assert shared_cache.fetch(str(tmp_path / "cache"), key, str(dest)) is None
    assert not dest.exists()


def test_a_manifest_naming_files_outside_its_entry_is_not_used(tmp_path: Path) -> None:
    key, where = _entry(tmp_path)
    outside = tmp_path / "outside.rlib"
    outside.write_bytes(b"x")
    digest = hashlib.sha256(b"x").hexdigest()
    for name in ("../../../../outside.rlib", ".hidden", shared_cache.MANIFEST):
        (where / shared_cache.MANIFEST).write_text(json.dumps({"outputs": {name: digest}}))
        assert shared_cache.fetch(str(tmp_path / "cache"), key, str(tmp_path / "dest")) is None


def test_storing_again_replaces_a_broken_entry(tmp_path: Path) -> None:
    key, where = _entry(tmp_path)
    (where / "libx-1.rlib").write_bytes(b"planted")
    shared_cache.store(str(tmp_path / "cache"), key, str(tmp_path / "out"),
                       {"libx-1.rlib": hashlib.sha256(b"rlib bytes").hexdigest()})
    assert shared_cache.fetch(str(tmp_path / "cache"), key, str(tmp_path / "dest")) is not None
    assert not [n for n in os.listdir(where.parent) if n.endswith(".tmp")]


def test_out_dir_files_lists_every_file_below_it_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("z.rs", "a.rs", "b/c.rs"):
        (tmp_path / name).write_text(name)
    assert shared_cache.out_dir_files(str(tmp_path)) == [str(tmp_path / n) for n in ("a.rs", "z.rs", "b/c.rs")]
    assert shared_cache.out_dir_files(None) == []


def test_stamped_keys_read_each_replay_stamp_with_its_rlib_digest_and_none_without_a_key(tmp_path: Path) -> None:
    for name, stamp in (("liba.rlib", {"key": "k", "shared": "s1", "outputs": {"liba.rlib": "d1"}}),
                        ("libb.rlib", {"key": "k", "outputs": {"libb.rlib": "d2"}})):
        (tmp_path / f"{name}.stamp").write_text(json.dumps(stamp))
    rlibs = [str(tmp_path / n) for n in ("libb.rlib", "liba.rlib", "libc.rlib")]
    assert shared_cache.stamped_keys(rlibs) == ["s1:d1", None, None]  # sorted by path; libc has no stamp
    assert shared_cache.key("x", *shared_cache.stamped_keys(rlibs[1:2])) is not None
    assert shared_cache.key("x", *shared_cache.stamped_keys(rlibs)) is None
    # the same key with other bytes (compiled again elsewhere): its dependents get other keys
    (tmp_path / "liba.rlib.stamp").write_text(json.dumps({"shared": "s1", "outputs": {"liba.rlib": "d3"}}))
    assert shared_cache.stamped_keys(rlibs[1:2]) == ["s1:d3"]


def test_a_key_names_the_build_directory_and_workspace_by_placeholder_and_hashes_the_files(tmp_path: Path) -> None:
    keys, files = [], []
    for checkout in ("one", "two"):
        target = tmp_path / checkout / "target"
        (target / "debug" / "deps").mkdir(parents=True)
        rlib = target / "debug" / "deps" / "libsyn-1.rlib"
        rlib.write_bytes(b"same bytes")
        files.append(rlib)
        found = shared_cache.roots(str(target), str(tmp_path / checkout))
        argv = f"--out-dir\0{target}/debug/deps\0-L\0dependency={target}/debug/deps\0{tmp_path / checkout}"
        keys.append(shared_cache.key(argv.encode(), json.dumps({"OUT_DIR": f"{target}/debug/build/x/out"}),
                                     files=[str(rlib)], found=found))
    assert keys[0] == keys[1]
    files[1].write_bytes(b"other bytes")  # contents stay exact
    assert shared_cache.key(files=[str(files[1])], found=shared_cache.roots(str(tmp_path / "two" / "target"), None)) \
        != shared_cache.key(files=[str(files[0])], found=shared_cache.roots(str(tmp_path / "one" / "target"), None))
    # only whole path components: a sibling whose name starts with the root's is not the root
    found = shared_cache.roots(str(tmp_path / "t"), None)
    assert shared_cache.neutral(f"{tmp_path}/t-2/x {tmp_path}/t2", found) == f"{tmp_path}/t-2/x {tmp_path}/t2"
    assert shared_cache.neutral(f"a={tmp_path}/t/x:{tmp_path}/t", found) == \
        f"a={shared_cache.BUILD_DIR}/x:{shared_cache.BUILD_DIR}"


def test_neutral_and_restore_move_a_path_from_one_build_to_another_through_a_symlink_too(tmp_path: Path) -> None:
    real = tmp_path / "real-target"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    first = shared_cache.roots(str(tmp_path / "link"), str(tmp_path))
    assert shared_cache.neutral(f"{real}/a.rs", first) == shared_cache.neutral(f"{tmp_path}/link/a.rs", first)
    kept = shared_cache.neutral(f"{real}/a.rs {tmp_path}/ws.rs", first)
    second = shared_cache.roots("/elsewhere/target", "/elsewhere")
    assert shared_cache.restore(kept, second) == "/elsewhere/target/a.rs /elsewhere/ws.rs"
    assert shared_cache.names_root(["# env-dep:OUT_DIR=/elsewhere/target/debug/build/x/out"], second)
    assert not shared_cache.names_root(["# env-dep:CARGO_PKG_NAME=x"], second)


def test_a_key_bound_to_its_build_directories_is_shared_only_by_builds_in_the_same_place(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    here, there = shared_cache.roots("/a/target", "/a"), shared_cache.roots("/b/target", "/b")
    neutral_key = "ab" * 32
    assert shared_cache.resolve(cache, neutral_key, here) == neutral_key  # not bound (yet)
    bound_here = shared_cache.bind(cache, neutral_key, here)
    assert bound_here != neutral_key
    assert shared_cache.resolve(cache, neutral_key, here) == bound_here
    assert shared_cache.resolve(cache, neutral_key, there) not in (bound_here, neutral_key)
    assert shared_cache.bind(cache, neutral_key, here) == bound_here  # marked once; the same key again
