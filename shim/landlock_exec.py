"""The re-exec launcher: apply Landlock to this process, then become the program.

    python -I -S .../shim/landlock_exec.py [--read PATH]... [--write PATH]... [--connect PORT]...
                                           [--exec PATH]... [--no-exec] -- PROGRAM ARG...

With `--exec` or `--no-exec`, only the `--exec` trees may be executed (landlock.restrict's `execute`).

Why a launcher rather than `preexec_fn`: see shim.landlock. `command()` builds this argv for a caller.
It runs as a script (not `-m`), in isolated mode and without site, so it starts fast (~15 ms) and nothing in
the caller's environment (PYTHONPATH, .pth files) can run code before the restriction; it imports only
shim.mountns (a private mount namespace, read-only outside `--write`: no chmod, chown, utimes or xattr
change outside the write set; ~3 ms), shim.pidns (a PID namespace whose init it forks: whatever the program
starts ends when the program does), shim.landlock, shim.seccomp (TCP sockets only, applied after
Landlock) and the standard library.

Exit status `LAUNCH_FAILED` (with one `cratecage-landlock:` line on stderr) means the program never ran
because the confinement could not be applied: the launcher fails closed, it never runs a program unconfined.
"""

from __future__ import annotations

import os
import sys

LAUNCH_FAILED = 71  # EX_OSERR; rustc itself exits 0, 1 or 101
STDERR_PREFIX = "cratecage-landlock:"


def command(program_argv: list[str], read: list[str], write: list[str], connect: tuple[int, ...] = (),
            execute: list[str] | None = None) -> list[str]:
    """The argv that runs `program_argv` confined to `read` (read/execute) and `write` (everything); with
    `execute`, only those trees may be executed."""
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    for flag, values in (("--read", read), ("--write", write), ("--connect", [str(p) for p in connect]),
                         ("--exec", execute or [])):
        for value in values:
            argv += [flag, value]
    if execute is not None:
        argv.append("--no-exec")
    return [*argv, "--", *program_argv]


def parse(argv: list[str]) -> tuple[list[str], list[str], list[int], list[str] | None, list[str]]:
    """(read, write, connect ports, execute or None, program argv) from the launcher's own arguments."""
    lists: dict[str, list[str]] = {"--read": [], "--write": [], "--connect": [], "--exec": []}
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
    execute = lists["--exec"] if no_exec or lists["--exec"] else None
    return lists["--read"], lists["--write"], [int(p) for p in lists["--connect"]], execute, program


def main(argv: list[str]) -> None:
    try:
        read, write, ports, execute, program = parse(argv)
        from shim import landlock, mountns, pidns, seccomp  # before the restriction: after it, shim/ is unreadable

        try:  # before Landlock, which forbids mounting: metadata outside the write set (shim.mountns)
            mountns.read_only_outside(write)
        except mountns.Unavailable:
            pass  # no namespace can be made here: metadata changes stay possible (README, Limits)
        pidns.become_init_of_own_namespace()  # only the program's process returns (shim.pidns)
        landlock.restrict(read, write, allow_connect_ports=ports, execute=execute)
        seccomp.restrict_sockets(udp=bool(ports))  # what Landlock leaves open: Unix sockets, UDP (shim.seccomp)
        os.execv(program[0], program)
    except (OSError, ValueError) as err:
        print(f"{STDERR_PREFIX} {err}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(LAUNCH_FAILED)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv[1:])
