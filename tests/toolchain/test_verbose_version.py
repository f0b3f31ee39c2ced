"""`rustc -vV` through the wrapper, remembered per compiler binary (shim.toolchain.verbose_version)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shim import VERSION_LINE
from shim.toolchain import verbose_version

from conftest import WRAPPER, scrubbed

FAKE = "#!/bin/sh\necho \"rustc {v} (fake)\"\necho \"release: {v}\"\necho asked >> \"$(dirname \"$0\")/asked\"\n"


def fake_rustc(tmp_path: Path, version: str) -> Path:
    rustc = tmp_path / "bin" / "rustc"
    rustc.parent.mkdir(exist_ok=True)
    rustc.write_text(FAKE.format(v=version))
    rustc.chmod(0o755)
    return rustc


def wrapped_vv(rustc: Path, cache: Path, **extra: str) -> bytes:
    env = dict(scrubbed(dict(os.environ)), CRATECAGE_CACHE_DIR=str(cache), **extra)
    done = subprocess.run([str(WRAPPER), str(rustc), "-vV"], capture_output=True, env=env, check=True, timeout=60)
    return done.stdout


def asked(rustc: Path) -> int:
    path = rustc.parent / "asked"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_second_question_is_answered_without_the_compiler(tmp_path: Path) -> None:
    rustc = fake_rustc(tmp_path, "1.2.3")
    first = wrapped_vv(rustc, tmp_path / "cache")
    assert first == b"rustc 1.2.3 (fake)\nrelease: 1.2.3\n" + VERSION_LINE.encode() + b"\n"
    assert wrapped_vv(rustc, tmp_path / "cache") == first
    assert asked(rustc) == 1


def test_a_changed_compiler_is_asked_again(tmp_path: Path) -> None:
    rustc = fake_rustc(tmp_path, "1.2.3")
    wrapped_vv(rustc, tmp_path / "cache")
    fake_rustc(tmp_path, "1.2.45")  # another size and mtime
    os.utime(rustc, ns=(1, 1))
    assert wrapped_vv(rustc, tmp_path / "cache").startswith(b"rustc 1.2.45 (fake)\n")
    assert asked(rustc) == 2


def test_a_stored_answer_for_another_identity_is_not_used(tmp_path: Path) -> None:
    rustc = fake_rustc(tmp_path, "1.2.3")
    env = {"CRATECAGE_CACHE_DIR": str(tmp_path / "cache")}
    path, _ident = verbose_version._where(str(rustc), env)
    Path(path).parent.mkdir(parents=True)
    Path(path).write_bytes(verbose_version.MAGIC + b"\0\0" + b"/elsewhere/rustc\x001\x002\x003" + b"\0\0rustc 6.6.6\n")
    assert verbose_version.cached(str(rustc), env) is None
    assert wrapped_vv(rustc, tmp_path / "cache").startswith(b"rustc 1.2.3 (fake)\n")


def test_loader_variables_or_an_inner_wrapper_always_ask(tmp_path: Path) -> None:
    rustc = fake_rustc(tmp_path, "1.2.3")
    wrapped_vv(rustc, tmp_path / "cache")
    wrapped_vv(rustc, tmp_path / "cache", LD_LIBRARY_PATH="/nonexistent")
    assert asked(rustc) == 2
    inner = tmp_path / "inner"
    inner.write_text('#!/bin/sh\nexec "$@"\n')
    inner.chmod(0o755)
    wrapped_vv(rustc, tmp_path / "cache", CRATECAGE_WRAPPER=str(inner))
    assert asked(rustc) == 3


def test_a_failing_or_odd_answer_is_not_kept(tmp_path: Path) -> None:
    rustc = tmp_path / "bin" / "rustc"
    rustc.parent.mkdir()
    rustc.write_text("#!/bin/sh\necho 'not a compiler'\n")
    rustc.chmod(0o755)
    assert wrapped_vv(rustc, tmp_path / "cache") == b"not a compiler\n" + VERSION_LINE.encode() + b"\n"
    assert not (tmp_path / "cache" / verbose_version.CACHE_DIR).exists()
