"""rustc's dep-info (`.d`) files: the inputs of a compile, and the variables it read (`# env-dep:` lines).

Cargo reads the `.d` of every unit to decide what makes it stale; cratecage reads the one its wasm compiles
wrote and writes the one cargo reads for a build script it compiled for wasm (shim.build.script).
"""

from __future__ import annotations

from pathlib import Path

from shim.files import atomic_write


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ")


def read_dep_info(path: Path) -> tuple[list[str], list[str]]:
    """(dependencies of the first rule, `# env-dep:` lines) of a rustc `.d` file."""
    deps: list[str] = []
    env_lines: list[str] = []
    first = True
    for line in path.read_text(errors="surrogateescape").splitlines():
        if line.startswith("# env-dep:"):
            env_lines.append(line)
            continue
        if first and ":" in line and line.strip():
            rest = line.split(": ", 1)[1] if ": " in line else ""
            word = ""
            i = 0
            while i < len(rest):
                ch = rest[i]
                if ch == "\\" and i + 1 < len(rest):
                    word += rest[i + 1]
                    i += 2
                    continue
                if ch == " ":
                    if word:
                        deps.append(word)
                    word = ""
                else:
                    word += ch
                i += 1
            if word:
                deps.append(word)
            first = False
    return deps, env_lines


def write_dep_info(dep_file: Path, outputs: list[str], deps: list[str], env_lines: list[str]) -> None:
    body = " ".join(_escape(d) for d in deps)
    lines = [f"{_escape(out)}: {body}" for out in outputs]
    lines.append("")
    lines += [f"{_escape(d)}:" for d in deps]
    if env_lines:
        lines.append("")
        lines += env_lines
    atomic_write(dep_file, "\n".join(lines) + "\n")
