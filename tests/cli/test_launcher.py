"""The launchers `make setup` writes (the native one and the Python one beside it, or the Python one alone),
and the image of the fast path the Python one loads (shim.cli.image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shim
from shim.cli import image

from conftest import scrubbed


def _checkout(tmp_path: Path, *, native: bool = False, env: dict[str, str] | None = None,
              edit=None) -> tuple[Path, Path, str]:
    """A copy of the package under tmp_path (`edit` may change it) and launchers for it; what writing
    them said on stderr."""
    root = tmp_path / "checkout"
    shutil.copytree(Path(shim.__file__).parent, root / "shim",
                    ignore=shutil.ignore_patterns("__pycache__", "target", "*.wasm"))
    if edit:
        edit(root)
    launcher = tmp_path / "cratecage"
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
                           "from shim.cli.launcher import write_launcher; "
                           f"write_launcher({str(launcher)!r}, {sys.executable!r}, native={native!r})"],
                          check=True, capture_output=True, text=True, env=env)
    return root, launcher, done.stderr


def _version(launcher: Path) -> str:
    p = subprocess.run([str(launcher), "version"], capture_output=True, env=scrubbed({}), check=True)
    return p.stdout.decode().strip()


def test_the_image_is_written_used_and_replaced_when_a_source_changes(tmp_path: Path) -> None:
    root, launcher, _ = _checkout(tmp_path)
    path = Path(image.image_path(str(root)))
    assert not path.exists()
    first = _version(launcher)
    assert first == shim.VERSION_LINE
    assert path.is_file()  # the first run wrote it
    built = path.stat().st_mtime_ns
    assert _version(launcher) == first
    assert path.stat().st_mtime_ns == built  # a fresh image is used as it is

    # an edit that keeps the size (only the mtime tells) and one that changes it: both are seen at once
    init = root / "shim" / "__init__.py"
    text = init.read_text()
    same_size = text.replace(f'__version__ = "{shim.__version__}"', '__version__ = "' + "9" * len(shim.__version__) + '"')
    assert len(same_size) == len(text) and same_size != text
    stat = init.stat()
    init.write_text(same_size)
    os.utime(init, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # .pyc files keep whole seconds
    assert _version(launcher).startswith("cratecage: " + "9" * len(shim.__version__) + " ")
    init.write_text(text.replace(f'__version__ = "{shim.__version__}"', '__version__ = "10.20.30-edited"'))
    assert _version(launcher).startswith("cratecage: 10.20.30-edited ")
    assert path.stat().st_mtime_ns != built


def test_a_broken_or_unwritable_image_falls_back_to_plain_imports(tmp_path: Path) -> None:
    root, launcher, _ = _checkout(tmp_path)
    path = Path(image.image_path(str(root)))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00not marshal data")
    assert _version(launcher) == shim.VERSION_LINE
    path.unlink()
    path.mkdir()  # cannot be read nor replaced
    assert _version(launcher) == shim.VERSION_LINE


def test_the_image_compiles_future_annotations_as_the_import_would(tmp_path: Path) -> None:
    """The `from __future__ import annotations` statement is dropped and its flag kept: annotations stay
    unevaluated strings, so typing-only names (`if False:` imports) never run."""
    src = tmp_path / "m.py"
    src.write_text("from __future__ import annotations\nif False:\n    from typing import Mapping\n"
                   "def f(x: Mapping[str, int]) -> Undefined: return x\n")
    code = image._compile(str(src), src.read_bytes())
    names = set(code.co_names)
    assert "__future__" not in names and "annotations" not in names
    space: dict = {}
    exec(code, space)
    assert space["f"].__annotations__ == {"x": "Mapping[str, int]", "return": "Undefined"}


def _is_script(path: Path) -> bool:
    return path.read_bytes()[:2] == b"#!"


def _dynamic(path: Path) -> bool:
    """Whether an ELF64 program names an interpreter (PT_INTERP): the dynamic loader."""
    import struct

    elf = path.read_bytes()
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def test_the_native_launcher_is_installed_with_the_python_one_beside_it(tmp_path: Path) -> None:
    _, launcher, said = _checkout(tmp_path, native=True)
    assert said == ""
    assert not _is_script(launcher) and _is_script(Path(f"{launcher}-py"))
    if Path(f"/usr/lib/{os.uname().machine}-linux-gnu/libc.a").is_file():  # glibc's static archive
        assert not _dynamic(launcher)
    assert _version(launcher) == shim.VERSION_LINE
    # hints name the program the user runs, not the Python launcher behind it
    p = subprocess.run([str(launcher)], capture_output=True, text=True, env=scrubbed({}))
    assert p.returncode == 2 and f"RUSTC_WRAPPER={launcher}," in p.stderr


def test_without_a_rustc_the_launcher_is_the_python_one_and_setup_says_so_once(tmp_path: Path) -> None:
    env = dict(scrubbed(dict(os.environ)), PATH="/nonexistent-bin")
    _, launcher, said = _checkout(tmp_path, native=True, env=env)
    assert _is_script(launcher) and not Path(f"{launcher}-py").exists()
    assert said.count("\n") == 1 and said.startswith("cratecage: no rustc") and str(launcher) in said
    assert _version(launcher) == shim.VERSION_LINE


def test_a_native_launcher_that_does_not_build_leaves_the_python_one(tmp_path: Path) -> None:
    def break_source(root: Path) -> None:
        (root / "shim" / "rust" / "fastpath" / "main.rs").write_text("fn main() { this is not rust }\n")

    _, launcher, said = _checkout(tmp_path, native=True, edit=break_source)
    assert _is_script(launcher) and not Path(f"{launcher}-py").exists()
    assert said.count("\n") == 1 and "could not build the native launcher" in said
    assert _version(launcher) == shim.VERSION_LINE
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("cratecage")] == ["cratecage"]


def test_where_static_linking_fails_the_native_launcher_is_linked_dynamically(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shim.cli import launcher as launcher_module

    monkeypatch.setattr(launcher_module, "LINKINGS", (("-C", "link-arg=-Wl,--no-such-linker-flag"), ()))
    path = tmp_path / "cratecage"
    launcher_module.write_launcher(str(path), sys.executable)
    assert capsys.readouterr().err == ""
    assert not _is_script(path) and _is_script(Path(f"{path}-py")) and _dynamic(path)
    assert _version(path) == shim.VERSION_LINE
