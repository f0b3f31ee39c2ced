"""The launcher `make setup` writes, and the image of the fast path it loads (shim.cli.image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import shim
from shim.cli import image

from conftest import scrubbed


def _checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the package under tmp_path and a launcher for it."""
    root = tmp_path / "checkout"
    shutil.copytree(Path(shim.__file__).parent, root / "shim",
                    ignore=shutil.ignore_patterns("__pycache__", "target", "*.wasm"))
    launcher = tmp_path / "cratecage"
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
                    "from shim.cli.launcher import write_launcher; "
                    f"write_launcher({str(launcher)!r}, {sys.executable!r})"], check=True)
    return root, launcher


def _version(launcher: Path) -> str:
    p = subprocess.run([str(launcher), "version"], capture_output=True, env=scrubbed({}), check=True)
    return p.stdout.decode().strip()


def test_the_image_is_written_used_and_replaced_when_a_source_changes(tmp_path: Path) -> None:
    root, launcher = _checkout(tmp_path)
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
    root, launcher = _checkout(tmp_path)
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
