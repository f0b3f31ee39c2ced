"""The re-exec launcher: apply Landlock to this process, then become the program.

    python -I -S .../shim/confine/landlock_exec.py [--read PATH]... [--write PATH]... [--connect PORT]...
                                           [--exec PATH]... [--run-output PATH]... [--no-exec] [--metadata seccomp]
                                           [--argv0 NAME] [--report FILE] -- PROGRAM ARG...
    python -I -S .../shim/confine/landlock_exec.py --which-metadata-guard     (for `cratecage doctor`)

With `--exec` or `--no-exec`, only the `--exec` and `--run-output` trees may be executed (landlock.restrict's
`execute`); with `--report` too, the launcher notes in FILE what the program's tree tried to run outside them,
and what it ran in the `--run-output` trees: a build driver's own output (shim.confine.exec_watch).

Why a launcher rather than `preexec_fn`: see shim.confine.landlock. `command()` builds this argv for a caller.
It runs as a script (not `-m`), in isolated mode and without site, so it starts fast (~15 ms) and nothing in
the caller's environment (PYTHONPATH, .pth files) can run code before the restriction; it imports only
shim.confine.mountns, shim.confine.hostns, shim.confine.pidns, shim.confine.caps, shim.confine.landlock, shim.confine.seccomp, shim.confine.exec_watch (with
`--report`) and the standard library.

Metadata (chmod, chown, utimes, xattrs: Landlock governs none of them) is guarded one of two ways, and the
launcher knows which (`metadata_guard`):
  - "mountns": a private mount namespace, read-only outside `--write` (shim.confine.mountns, ~3 ms): changes
    outside the write set fail with EROFS, inside it they work;
  - "seccomp", where no namespace can be made (user namespaces disabled, no CAP_SYS_ADMIN) or when the
    caller's environment sets CRATECAGE_METADATA_GUARD=seccomp (`command` reads it; the tests use it to
    check builds on such hosts): every metadata call fails with EPERM, inside the write set too
    (shim.confine.seccomp.refuse_metadata says what that breaks).
Then IPC and UTS namespaces, and a network namespace when no `--connect` port is given (shim.confine.hostns), then
a PID namespace whose init the launcher forks (shim.confine.pidns: whatever the program starts ends when the program
does); then, in the program's process, every capability is dropped (shim.confine.caps), then Landlock, then the
socket filter (TCP only), the metadata filter where it applies, and the filter of calls that would undo
the rest (io_uring, the mount API, new namespaces, fallocate, memfd_create: shim.confine.seccomp.REFUSED).

Exit status `LAUNCH_FAILED` (with one `cratecage-landlock:` line on stderr) means the program never ran
because the confinement could not be applied: the launcher fails closed, it never runs a program unconfined.
"""

from __future__ import annotations

import os
import sys

LAUNCH_FAILED = 71  # EX_OSERR; rustc itself exits 0, 1 or 101
STDERR_PREFIX = "cratecage-landlock:"
METADATA_GUARD_ENV = "CRATECAGE_METADATA_GUARD"  # "seccomp": skip the mount namespace (tests, odd hosts)
GUARDS = ("mountns", "seccomp")


def command(program_argv: list[str], read: list[str], write: list[str], connect: tuple[int, ...] = (),
            execute: list[str] | None = None, file_size: int | None = None, argv0: str | None = None,
            report: str | None = None, output: list[str] = ()) -> list[str]:
    """The argv that runs `program_argv` confined to `read` (read/execute) and `write` (everything); with
    `execute`, only those trees (and `output`'s, whose runs the report notes) may be executed; with
    `file_size`, a hard RLIMIT_FSIZE of that many bytes is
    set before anything else runs (no file the program writes can outgrow it); with `argv0`, the program
    (still the file `program_argv[0]`) gets that as its argv[0]; with `report` (and `execute`), what the
    program's tree tries to run outside `execute` is noted in that file (shim.confine.exec_watch)."""
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    forced = ["seccomp"] if os.environ.get(METADATA_GUARD_ENV) == "seccomp" else []
    sizes = [str(file_size)] if file_size is not None else []
    for flag, values in (("--read", read), ("--write", write), ("--connect", [str(p) for p in connect]),
                         ("--exec", execute or []), ("--run-output", output if execute is not None else []),
                         ("--metadata", forced), ("--file-size", sizes),
                         ("--argv0", [argv0] if argv0 else []), ("--report", [report] if report else [])):
        for value in values:
            argv += [flag, value]
    if execute is not None:
        argv.append("--no-exec")
    return [*argv, "--", *program_argv]


def parse(argv: list[str]) -> tuple[list[str], list[str], list[int], list[str] | None, list[str]]:
    """(read, write, connect ports, execute or None, program argv) from the launcher's own arguments;
    `--metadata` is read by `forced_guard`."""
    lists: dict[str, list[str]] = {"--read": [], "--write": [], "--connect": [], "--exec": [], "--metadata": [],
                                   "--file-size": [], "--argv0": [], "--report": [], "--run-output": []}
    no_exec = False
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--no-exec":
            no_exec, i = True, i + 1
            continue
        if argv[i] not in lists or i + 1 >= len(argv):
            raise ValueError(f"unexpected argument {argv[i]!r}")
        lists[argv[i]].append(argv[i + 1])
        i += 2
    program = argv[i + 1:]
    if not program:
        raise ValueError("no program after --")
    if any(g not in GUARDS for g in lists["--metadata"]):
        raise ValueError(f"unknown --metadata {lists['--metadata']!r}")
    execute = [*lists["--exec"], *lists["--run-output"]] if no_exec or lists["--exec"] else None
    return lists["--read"], lists["--write"], [int(p) for p in lists["--connect"]], execute, program


def file_size_limit(argv: list[str]) -> int | None:
    """The launcher's `--file-size` value in bytes (None: no limit asked for)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    sizes = [int(head[i + 1]) for i in range(len(head) - 1) if head[i] == "--file-size"]
    return min(sizes) if sizes else None


def argv0(argv: list[str]) -> list[str]:
    """The launcher's `--argv0` value, as a list of zero or one."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return [head[i + 1] for i in range(len(head) - 1) if head[i] == "--argv0"][:1]


def report_file(argv: list[str]) -> str | None:
    """The launcher's `--report` value (None: no exec watch)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return next((head[i + 1] for i in range(len(head) - 1) if head[i] == "--report"), None)


def run_output(argv: list[str]) -> list[str]:
    """The launcher's `--run-output` values: trees in `execute` whose runs the exec watch reports."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return [head[i + 1] for i in range(len(head) - 1) if head[i] == "--run-output"]


def forced_guard(argv: list[str]) -> str:
    """The launcher's `--metadata` value ("" when the launcher may choose)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return next((head[i + 1] for i in range(len(head) - 1) if head[i] == "--metadata"), "")


def metadata_guard(write: list[str], *, forced: str = "") -> str:
    """Set up the metadata guard's first half and say which guard is in force: "mountns" (done: the
    namespace is read-only outside `write`) or "seccomp" (the caller installs shim.confine.seccomp.refuse_metadata
    after Landlock, which sets the no_new_privs it needs). Runs before Landlock, which forbids mounting;
    a namespace made but not set up raises OSError (fail closed)."""
    from shim.confine import mountns

    if forced == "seccomp":
        return "seccomp"
    try:
        mountns.read_only_outside(write)
        return "mountns"
    except mountns.Unavailable:
        return "seccomp"


def describe_guard() -> str:
    """`cratecage doctor`'s line: which metadata guard a confined child would get here (asked of a child
    launcher, which may make a namespace this process must not enter)."""
    import subprocess

    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--which-metadata-guard"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    which = proc.stdout.strip()
    if which == "mountns":
        return ("private mount namespace: chmod, chown, utimes and xattr changes outside a confined "
                "child's write set fail with EROFS")
    if which == "seccomp":
        why = f"{METADATA_GUARD_ENV}=seccomp" if os.environ.get(METADATA_GUARD_ENV) == "seccomp" else \
            "no mount namespace can be made here"
        return (f"seccomp filter ({why}): chmod, chown, utimes and xattr "
                "calls of confined children fail with EPERM everywhere, their own outputs included")
    return f"none: {proc.stderr.strip() or which or 'the launcher failed'}"


def main(argv: list[str]) -> None:
    try:
        if argv == ["--which-metadata-guard"]:
            which = metadata_guard([], forced=os.environ.get(METADATA_GUARD_ENV, ""))
            from shim.confine import seccomp

            seccomp.metadata_program()  # raises on an unknown machine
            print(which)
            sys.exit(0)
        read, write, ports, execute, program = parse(argv)
        size = file_size_limit(argv)
        if size is not None:  # first, so the program and all it starts inherit it
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        from shim.confine import caps  # before the restriction: shim/ is unreadable after
        from shim.confine import hostns, landlock, pidns, seccomp

        name = argv0(argv)
        report = report_file(argv)
        watch = None
        if report and execute is not None:  # before the mount namespace, which makes the report read-only
            from shim.confine.exec_watch import Watch

            watch = Watch(report, execute, name[0] if name else os.path.basename(program[0]), run_output(argv))
            watch.start()
        guard = metadata_guard(write, forced=forced_guard(argv))  # before Landlock, which forbids mounting
        hostns.separate(network=bool(ports))  # IPC, UTS, and the network without routes (shim.confine.hostns)
        # Only the program's process returns (shim.confine.pidns); the launcher serves the exec watch meanwhile.
        in_namespace = pidns.become_init_of_own_namespace(in_launcher=watch.in_launcher if watch else None)
        caps.drop_all()  # the namespaces are made: no capability is needed any more (shim.confine.caps)
        landlock.restrict(read, write, allow_connect_ports=ports, execute=execute)
        if watch is not None:  # after Landlock's no_new_privs, before the filters below (shim.confine.exec_watch)
            watch.install() if in_namespace else watch.unwatched()
        seccomp.restrict_sockets(udp=bool(ports))  # what Landlock leaves open: Unix sockets, UDP (shim.confine.seccomp)
        if guard == "seccomp":
            seccomp.refuse_metadata()  # no read-only mounts: refuse metadata calls everywhere (shim.confine.seccomp)
        seccomp.refuse_host_calls()  # io_uring, the mount API, new namespaces, fallocate, ... (shim.confine.seccomp)
        os.execv(program[0], [name[0] if name else program[0], *program[1:]])
    except (OSError, ValueError) as err:
        print(f"{STDERR_PREFIX} {err}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(LAUNCH_FAILED)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    main(sys.argv[1:])
