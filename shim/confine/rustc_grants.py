"""What a confined native compile (shim.intercept.confined) may execute, read, list and write.

Why a list of exact inputs rather than rustc's cwd: for a workspace member cargo runs rustc in the
workspace root, which holds `.env`, `.git/config` and the target directory with every crate's build state
(`build/*/output`, `.fingerprint/`, or the new layout's `build/*/*/{run,fingerprint}/`; cratecage's
journal). A library or linker script a dependency ships names such a file and the linker quotes it back. So a confined compile may:

    execute  the toolchain (rustc's sysroot incl. rust-lld and gcc-ld, clippy-driver, rustup's proxy and
             RUSTUP_HOME/toolchains when argv[1] is the proxy), the linker the user configured: `-C linker=`
             and `cc`, a `#!` linker script's interpreter, `-fuse-ld=NAME` (ld.NAME on PATH and in gcc's
             directories), `-fuse-ld=/path`, `--ld-path=PATH` and `-B DIR` given in the argv's link
             arguments (never ones a build script printed, nor paths in the package or the target
             directory), a clang's own bin directory, gcc's internal passes, the system linkers
             (`LINKERS`) and the ELF loader;
    read     the above, the system library directories and the loader's configuration, the package
             (CARGO_MANIFEST_DIR) minus cargo's target directories in it (shim.confine.fsview), the input source
             files themselves, OUT_DIR, the `--extern` files, the crate files (lib*.rlib, lib*.rmeta,
             lib*.so) of each `-L dependency=`/`crate=` directory, other `-L` directories whole (native
             libraries), `@argfile`s, a target spec, and what the crate's owner granted its build script
             (`[permissions.build.<crate>] filesystem-access`);
    list     the `-L dependency=`/`crate=` directories (rustc searches them for transitive crates);
    write    the output directory, the incremental directory, the owner's writable grants, /dev/null and a
             private TMPDIR.

So a confined compile of a member can no longer `include_str!` (or `#[path]`) a file outside its package
unless the owner grants it. The output directory stays readable (rustc writes its objects there and the
linker reads them back): in the old build-dir layout that is `<target>/<profile>/deps` for libraries,
other crates' `.d` included; in the new one the unit's own `build/<pkg>/<H>/out`, and each `-L dependency=`
directory is one dependency's `out/` (cargo names every transitive one), of which only the crate files
are read. A `--target` unit of the new layout also gets `-L dependency=` of a host directory that does not
exist; a rule for a missing path is no rule (shim.confine.landlock).
"""

from __future__ import annotations

import os

from shim.cargo.rustc_args import RustcArgs
from shim.toolchain.capable import is_rustup_proxy, rustup_home

# What a native compile and link may read besides the paths its own arguments name.
SYSTEM_READ = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
               "/usr/local/lib", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
               "/dev/null", "/dev/urandom")
# gcc's own passes (collect2, lto-wrapper, lto1) live here; the driver starts them.
GCC_INTERNALS = ("/usr/lib/gcc", "/usr/lib64/gcc", "/usr/libexec/gcc", "/usr/lib/gcc-cross")
# The linkers a driver may start (`-fuse-ld=NAME` is `ld.NAME`), searched on PATH and in binutils' dir.
LINKER_FLAVOURS = ("bfd", "gold", "lld", "mold", "wild")
LINKERS = ("ld", *(f"ld.{n}" for n in LINKER_FLAVOURS), "mold", "wild")
# The ELF loaders of the usual Linux ABIs (the kernel opens a program's PT_INTERP as an executable).
ELF_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-armhf.so.3",
               "/lib/ld-linux.so.2", "/lib64/ld64.so.2", "/lib/ld-linux-riscv64-lp64d.so.1",
               "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")
# Sysroots shared with the rest of the system: only their rustlib is executable, not all of /usr/bin.
SYSTEM_PREFIXES = ("/", "/usr", "/usr/local")
# Directories too broad to make executable because a linker driver lives there.
SHARED_BIN = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"})
# Codegen and -Z options whose values go to the linker driver.
LINK_ARG_OPTIONS = frozenset({"link-arg", "link-args", "pre-link-arg", "pre-link-args"})
# The files of a `-L dependency=` directory that a compile reads: crates, and proc macros to load.
CRATE_FILE = (("lib", ".rlib"), ("lib", ".rmeta"), ("lib", ".so"))
CACHEDIR_TAG = "CACHEDIR.TAG"


class Grants:
    """What the confined rustc and everything it starts may execute, read, list and write (absolute)."""

    __slots__ = ("execute", "read", "listable", "write")

    def __init__(self, execute: list[str], read: list[str], write: list[str], listable: list[str] = ()) -> None:
        self.execute, self.read, self.write, self.listable = execute, read, write, list(listable)


def grants(chain: list[str], rustc_args: list[str], args: RustcArgs, environ: dict[str, str], tmp: str,
           *, target: str, owner: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> Grants:
    """See the module docstring; `rustc_args` are rustc's own arguments as cargo gave them, `target` the
    target directory, `owner` the (readable, writable) paths of the crate's build grant."""
    path = environ.get("PATH", os.defpath)
    package = environ.get("CARGO_MANIFEST_DIR", "")
    out_dir = environ.get("OUT_DIR", "")
    programs = [p for p in (_which(c, path) for c in chain) if p]
    execute = [*programs, *_toolchain_exec(programs, args, environ)]
    execute += [i for p in programs for i in _interpreter(p)]  # a workspace wrapper may be a script
    execute += linker_exec(args.codegen_value("linker") or "cc", path)
    untrusted = [d for d in (package, target, out_dir) if d]
    execute += user_linkers(link_args(args), _script_output(out_dir), untrusted, path)
    multiarch = f"/usr/{os.uname().machine}-linux-gnu"

    write = [tmp, "/dev/null", *owner[1]]
    write.append(args.out_dir or (os.path.dirname(os.path.abspath(args.output)) if args.output else os.getcwd()))
    incremental = args.codegen_value("incremental")
    if incremental:
        write.append(incremental)

    read = [*SYSTEM_READ, multiarch, *execute, *owner[0], out_dir]
    read += package_reads(package, target, environ)
    read += [p for p in args.inputs if p != "-"]
    read += [p for _, p in args.externs if p]
    listed = []
    for kind, directory in args.lib_paths:
        if kind in ("dependency", "crate"):
            listed.append(directory)
            read += crate_files(directory)
        else:
            read.append(directory)
    read += [a[1:] for a in rustc_args if a.startswith("@") and not a.startswith("@shell:")]
    if args.target and args.target.endswith(".json"):
        read.append(args.target)
    if args.sysroot:
        read.append(args.sysroot)
    if any(is_rustup_proxy(p) for p in programs):
        read += rustup_toolchain_files(os.getcwd())
    return Grants(_absolute(execute), _absolute(read), _absolute(write), _absolute(listed))


def linker_exec(linker: str, path: str) -> list[str]:
    """What a link by the driver `linker` (and `cc`, which a configured linker may wrap) executes: the
    driver found on `path` and a `#!` script's interpreter, a clang's own bin directory, gcc's internal
    passes, the system linkers on `path` and in binutils' multiarch directory, and the ELF loaders.
    shim.host.probe confines a linking probe with this too."""
    execute = list(GCC_INTERNALS)
    for name in {linker, "cc"}:
        found = _which(name, path)
        if found:
            execute += [found, *_interpreter(found)]
            if os.path.dirname(found) not in SHARED_BIN and "clang" in os.path.basename(found):
                execute.append(os.path.dirname(found))  # clang runs ld.lld & co. from its own bin directory
    multiarch = f"/usr/{os.uname().machine}-linux-gnu"
    for directory in [*path.split(os.pathsep), os.path.join(multiarch, "bin")]:
        if os.path.isabs(directory):
            execute += [os.path.realpath(os.path.join(directory, n)) for n in LINKERS
                        if os.path.exists(os.path.join(directory, n))]
    execute += [os.path.realpath(p) for p in ELF_LOADERS if os.path.exists(p)]
    return execute


def package_reads(package: str, target: str, environ: dict[str, str]) -> list[str]:
    """The package directory minus every cargo target directory inside it (shim.confine.fsview)."""
    if not package:
        return []
    candidates = [target, environ.get("CARGO_TARGET_DIR", ""), os.path.join(package, "target")]
    if not any(c and _inside(os.path.abspath(c), package) for c in candidates) and not _tagged_child(package):
        return [package]  # a member of a workspace whose target dir is elsewhere: nothing to hide
    from shim.confine import fsview

    # ours and CARGO_TARGET_DIR even untagged (cargo tags only a directory it creates), others when tagged
    hidden = {*fsview.hidden_dirs_of(package, environ.get("OUT_DIR", ""), environ), *(os.path.normpath(c) for c in candidates[:2] if os.path.isabs(c)),
              *(os.path.normpath(c) for c in candidates[2:] if os.path.isfile(os.path.join(c, CACHEDIR_TAG)))}
    return fsview.landlock_paths(package, sorted(hidden))


def _tagged_child(package: str) -> bool:
    """Whether a directory right under the package is a cargo target directory (a `--target-dir` of its own)."""
    try:
        with os.scandir(package) as entries:
            return any(e.is_dir(follow_symlinks=False) and os.path.exists(os.path.join(e.path, CACHEDIR_TAG))
                       for e in entries)
    except OSError:
        return False


def crate_files(directory: str) -> list[str]:
    """The crates of a `-L dependency=` directory, one Landlock file rule each; never its `.d` files."""
    try:
        with os.scandir(directory) as entries:
            return [e.path for e in entries
                    if any(e.name.startswith(a) and e.name.endswith(b) for a, b in CRATE_FILE)]
    except OSError:
        return []


def link_args(args: RustcArgs) -> list[str]:
    """The words the argv hands the linker driver (`-C link-arg(s)`, `-Z pre-link-arg(s)`)."""
    out: list[str] = []
    pairs = [*args.codegen, *(tuple(u.partition("=")[::2]) for u in args.unstable)]
    for key, value in pairs:
        if key in LINK_ARG_OPTIONS and value:
            out += value.split() if key.endswith("args") else [value]
    return out


def user_linkers(words: list[str], script_output: bytes, untrusted: list[str], path: str) -> list[str]:
    """The linker programs the user chose through link arguments: `-fuse-ld=NAME|PATH`, `--ld-path=PATH`,
    `-B DIR`. A word a build script printed, or a path in the package or target directory, chooses nothing."""
    out: list[str] = []
    dirs = [d for d in path.split(os.pathsep) if os.path.isabs(d)]
    searched: list[str] = []
    names: list[str] = []
    for i, word in enumerate(words):
        if word.encode() in script_output:
            continue
        if word.startswith("-fuse-ld="):
            value = word[len("-fuse-ld="):]
            (searched if os.sep in value else names).append(value)
        elif word.startswith("--ld-path="):
            searched.append(word[len("--ld-path="):])
        elif word.startswith("-B"):
            prefix = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            if os.path.isabs(prefix) and not any(_inside(prefix, u) for u in untrusted):
                directory = os.path.realpath(prefix if os.path.isdir(prefix) else os.path.dirname(prefix))
                out.append(directory)  # and the interpreters of the linker scripts the driver finds there
                out += [i for n in LINKERS for i in _interpreter(os.path.join(directory, n))]
    for name in names:
        for directory in [*dirs, *GCC_INTERNALS]:
            for candidate in (os.path.join(directory, f"ld.{name}"), os.path.join(directory, name)):
                if os.path.isfile(candidate):
                    searched.append(candidate)
    for program in searched:
        if os.path.isabs(program) and os.path.isfile(program) and not any(_inside(program, u) for u in untrusted):
            real = os.path.realpath(program)
            out += [real, *_interpreter(real)]
    return out


def _script_output(out_dir: str) -> bytes:
    """What the package's build script printed (its link args are dependency input, not the user's)."""
    from shim.cargo import layout

    return (layout.script_output(out_dir) if out_dir else None) or b""


def _inside(path: str, root: str) -> bool:
    root = root.rstrip(os.sep)
    return path == root or path.startswith(root + os.sep)


def _absolute(paths: list[str]) -> list[str]:
    return sorted({os.path.abspath(p) for p in paths if p})


def _which(program: str, path: str) -> str | None:
    """`program` resolved like execvp would (a bare name on PATH), as a real path; None if not found."""
    if os.sep in program:
        return os.path.realpath(program) if os.path.exists(program) else None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _toolchain_exec(programs: list[str], args: RustcArgs, environ: dict[str, str]) -> list[str]:
    """The toolchain trees rustc may execute from: rustup's toolchains when argv[1] is rustup's proxy,
    else the sysroot of each program (the whole sysroot, or only its rustlib when it is /usr)."""
    out = []
    for program in programs:
        if is_rustup_proxy(program):  # a symbolic link to rustup, or a hard link (rustup's installer)
            home = rustup_home(environ)
            out += [os.path.join(home, "toolchains"), os.path.join(home, "settings.toml")]
            continue
        sysroot = os.path.dirname(os.path.dirname(program))
        if not os.path.isdir(os.path.join(sysroot, "lib", "rustlib")):
            continue  # not a toolchain's program (a workspace wrapper script): only the program itself
        out.append(os.path.join(sysroot, "lib", "rustlib") if sysroot in SYSTEM_PREFIXES else sysroot)
    if args.sysroot:
        out.append(os.path.join(args.sysroot, "lib", "rustlib"))
    return out


def rustup_toolchain_files(cwd: str) -> list[str]:
    """The `rust-toolchain.toml`/`rust-toolchain` files rustup's proxy reads to choose the toolchain:
    those of the cwd and each directory above it."""
    found, here = [], os.path.abspath(cwd)
    while True:
        found += [f for f in (os.path.join(here, n) for n in ("rust-toolchain.toml", "rust-toolchain"))
                  if os.path.isfile(f)]
        if os.path.dirname(here) == here:
            return found
        here = os.path.dirname(here)


def _interpreter(program: str) -> list[str]:
    """A `#!` script's interpreter (a linker wrapper script), so the script can run; else nothing."""
    from shim.files import shebang

    words = shebang(program)
    return [os.path.realpath(words[0])] if words else []
