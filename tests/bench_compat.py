"""The compatibility section of `make bench` (issue 11): which popular crates with build scripts build
through cratecage, and why the others do not.

`fixtures/compat-corpus` is a library depending on popular crates (84 packages of its graph have build
scripts) whose build scripts probe the compiler, generate code from build-dependencies (replayed for wasm),
run a C compiler, pkg-config, `sh configure`, cmake or python, or print link lines; its Cargo.lock pins
them. It is built three times, each from an empty target directory with `cargo build --keep-going` (a
failure stops only what depends on it), in one run so the times compare:

    native  plain cargo, no wrapper: the reference (a crate failing here is not cratecage's concern)
    empty   through cratecage with an empty policy (`CRATECAGE_POLICY` names an empty file; the curated
            defaults of shim/policy/curated.toml still apply)
    grants  through cratecage with the fixture's own cratecage.toml: the smallest grants the -sys crates
            need (cc, ar, pkg-config, sh/make, cmake, python3, ...)

Per package with a build script and per mode, the state comes from cargo's JSON messages
(`compiler-artifact` of the build script and of the library, `build-script-executed`); a package cargo
names in a failure (`could not compile`, `failed to run custom build command`) failed itself, one that was
never built otherwise was blocked by a dependency that failed. A failure's cause is read from its
`cratecage:` lines (attributed to the package they name) and its build script's stderr, and sorted into
one of `CLASSES`. For build scripts that ran both natively and wrapped, the directives that reach rustc
and the linker (cfgs, link lines, env, metadata: `compare_outputs`) are compared, with OUT_DIR and the
target directory masked.

Wrapped builds stop short where a crate fails, so their time ratio is a lower bound of what a full build
would cost; the first wrapped build also compiles the build scripts' wasm modules into the per-user cache
(`<cache>/modules`), which the second one finds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, Iterator

from shim.build import directives
from shim.cargo import layout
from shim.compile import replay_errors

ROOT = Path(__file__).resolve().parent.parent
CORPUS: Final = ROOT / "fixtures" / "compat-corpus"
MODES: Final = ("native", "empty", "grants")
WRAPPED: Final = MODES[1:]

# -- what cargo said --------------------------------------------------------------------------------------

# Stages of a package's build, in order; a package is `built` when its library is.
SCRIPT_COMPILED, SCRIPT_RAN, BUILT = "script compiled", "script ran", "built"
# cargo's error line for a unit that failed -> the stage that failed.
CARGO_FAILURES: Final = (
    (re.compile(r"^error: failed to run custom build command for `(?P<name>\S+) v(?P<version>\S+)`"), SCRIPT_RAN),
    (re.compile(r"^error: could not compile `(?P<name>[^`\s]+)(?: v(?P<version>[^`]+))?` \(build script\)"),
     SCRIPT_COMPILED),
    (re.compile(r"^error: could not compile `(?P<name>[^`\s]+)(?: v(?P<version>[^`]+))?` \((?:lib|proc-macro)\)"),
     BUILT),
)
LIB_KINDS: Final = frozenset({"lib", "rlib", "dylib", "proc-macro"})


@dataclass(frozen=True)
class Package:
    id: str
    name: str
    version: str
    has_script: bool
    deps: tuple[str, ...]  # ids of its dependencies of every kind (normal, build, dev excluded)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class Build:
    """One `cargo build --keep-going` of the corpus in one mode."""

    mode: str
    target: Path  # its target directory
    seconds: float
    exit_code: int
    stages: dict[str, set[str]]  # package id -> stages it reached
    out_dirs: dict[str, str]  # package id -> OUT_DIR of its build-script run
    failed: dict[str, str]  # package id -> the stage cargo said failed
    stderr: str


def host_metadata(ws: Path, env: dict[str, str]) -> dict:
    """`cargo metadata` of the workspace (offline, locked) for the host: what cargo builds there."""
    host = subprocess.run([env["RUSTC"], "-vV"], env=env, capture_output=True, text=True).stdout
    host = next((line.split(":", 1)[1].strip() for line in host.splitlines() if line.startswith("host:")), "")
    done = subprocess.run([env["CARGO"], "metadata", "--format-version", "1", "--offline", "--locked",
                           "--filter-platform", host], env=env, cwd=ws, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cargo metadata failed:\n{done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout)


def corpus_packages(ws: Path, env: dict[str, str]) -> dict[str, Package]:
    """Every package cargo builds for the host, by id."""
    meta = host_metadata(ws, env)
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    out = {}
    for p in meta["packages"]:
        if p["id"] not in nodes:
            continue
        deps = tuple(d["pkg"] for d in nodes[p["id"]]["deps"]
                     if any(k.get("kind") != "dev" for k in d["dep_kinds"]))
        script = any("custom-build" in t["kind"] for t in p["targets"])
        out[p["id"]] = Package(p["id"], p["name"], p["version"], script, deps)
    return out


def closure(packages: dict[str, Package], roots: list[str]) -> set[str]:
    """The ids of `roots` and everything they depend on."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(packages[pid].deps)
    return seen


def read_messages(stdout: str) -> Iterator[dict]:
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def cargo_failures(stderr: str, packages: dict[str, Package], stages: dict[str, set[str]]) -> dict[str, str]:
    """Package id -> failed stage, for each unit cargo's stderr names as failed. `could not compile` names
    no version: every version of that name that did not pass the stage is taken."""
    failed: dict[str, str] = {}
    for line in stderr.splitlines():
        for pattern, stage in CARGO_FAILURES:
            found = pattern.match(line)
            if not found:
                continue
            for pid, pkg in packages.items():
                if pkg.name == found["name"] and found["version"] in (None, pkg.version) \
                        and stage not in stages.get(pid, set()):
                    failed.setdefault(pid, stage)
    return failed


def run_build(ws: Path, target: Path, env: dict[str, str], mode: str, packages: dict[str, Package],
              specs: list[str]) -> Build:
    """A clean `cargo build --keep-going` into `target`; what each package reached, and cargo's stderr."""
    shutil.rmtree(target, ignore_errors=True)
    build_env = dict(env, CARGO_TARGET_DIR=str(target), CARGO_INCREMENTAL="0")
    cmd = [env["CARGO"], "build", "--offline", "--locked", "--keep-going",
           "--message-format=json-render-diagnostics", *(a for s in specs for a in ("-p", s))]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=build_env, cwd=ws, capture_output=True, text=True, errors="replace")
    return read_build(mode, target, time.perf_counter() - start, done.returncode, done.stdout, done.stderr,
                      packages)


def read_build(mode: str, target: Path, seconds: float, exit_code: int, stdout: str, stderr: str,
               packages: dict[str, Package]) -> Build:
    """What each package reached, from cargo's JSON messages on `stdout`, and what failed, from `stderr`."""
    stages: dict[str, set[str]] = {}
    out_dirs: dict[str, str] = {}
    for msg in read_messages(stdout):
        pid = msg.get("package_id", "")
        if msg.get("reason") == "compiler-artifact":
            kinds = set(msg["target"]["kind"])
            stage = SCRIPT_COMPILED if "custom-build" in kinds else BUILT if kinds & LIB_KINDS else None
            if stage:
                stages.setdefault(pid, set()).add(stage)
        elif msg.get("reason") == "build-script-executed":
            stages.setdefault(pid, set()).add(SCRIPT_RAN)
            out_dirs[pid] = msg["out_dir"]
    return Build(mode, target, seconds, exit_code, stages, out_dirs, cargo_failures(stderr, packages, stages), stderr)


# -- why a package failed ---------------------------------------------------------------------------------

# The classes, in the order the summary lists them. "ungrantable": refused with no policy entry that could
# allow it (a program in a writable grant or another crate's output, which is never run); "blocked": never built because a
# dependency failed; "native": fails natively too (not cratecage's concern).
CLASSES: Final = ("needs-grant", "directive refused", "probe refused", "ungrantable", "replay", "wasm gap",
                  "limit", "toolchain", "other", "native", "blocked")
# A denial's capability -> (class, what a grant would name).
DENIAL_CLASSES: Final = {
    "process-spawn": ("needs-grant", "program"),
    "filesystem-access": ("needs-grant", "file"),
    "env-access": ("needs-grant", "env"),
    "network-access": ("needs-grant", "route"),
    "directives": ("directive refused", ""),
    "rustc-probe": ("probe refused", ""),
}
# Denial.render and Denial.render_for: `cratecage: <subject>: <capability> <verb>: <target>: <reason>`.
DENIAL: Final = re.compile(r"cratecage: (?P<subject>.+?): (?P<capability>" + "|".join(DENIAL_CLASSES)
                           + r") (?P<verb>denied as the policy says|denied|not granted)(?: \([^)]*\))?: ")
# Who a line is about: the last "build script of NAME VERSION", else the unit a compile names.
SUBJECTS: Final = (re.compile(r"build script of (?P<name>[^\s:]+) (?P<version>[^\s:)]+)"),
                   re.compile(r"(?:library|proc macro) (?P<name>[^\s:]+) (?P<version>[^\s:)]+)"),
                   re.compile(r"running build script of (?P<name>[^\s:]+)(?P<version>)"))
REPLAY_FAILED: Final = "does not compile for wasm32-wasip1"
CARGO_STATUS: Final = re.compile(r"^ {0,11}[A-Z][a-z]+ \S+ v\d")  # "   Compiling serde v1.0.0 ..."
# The runner's messages for a run stopped by a limit (shim.build.run: `_stop`, `_outcome`).
LIMIT_WORDS: Final = ("CRATECAGE_LIMIT_", "ran out of memory", "overflowed its stack")
TOOLCHAIN_WORDS: Final = ("std facade", "toolchain", "wasm32-wasip1 std", "-vV`")
# What a build script's own stderr says when it met an API wasm32-wasip1 (or the facade) lacks.
WASM_GAP_WORDS: Final = ("operation not supported on this platform", "not supported on this platform",
                         "unsupported", "failed to spawn thread", "cannot be used on wasm",
                         "not implemented on this platform")


def _stem(diagnosis: replay_errors.Diagnosis) -> str:
    """The fixed part of a Diagnosis' cause, before the first crate it names (its text is the product's)."""
    return diagnosis.cause.split("\0")[0]


# replay_errors' kinds by the words of their cause; OTHER shows no cause.
REPLAY_KINDS: Final = (
    (_stem(replay_errors.Diagnosis(replay_errors.CRATE_GRAPH, "", "E0463", "\0")), replay_errors.CRATE_GRAPH),
    (_stem(replay_errors.Diagnosis(replay_errors.TARGET_DEPENDENCY, "", None, "\0", target="\0")),
     replay_errors.TARGET_DEPENDENCY),
    (_stem(replay_errors.Diagnosis(replay_errors.NATIVE_ONLY, "")), replay_errors.NATIVE_ONLY),
)


@dataclass(frozen=True)
class Message:
    """One `cratecage:` line of the build's stderr and the indented lines that continue it."""

    line: str
    more: tuple[str, ...]

    @property
    def entry(self) -> str:
        """The policy entry it offers (its lines after "add to the policy:", table header left out)."""
        lines = [m.strip() for m in self.more]
        if "to permit it, add to the policy:" not in lines:
            return ""
        after = lines[lines.index("to permit it, add to the policy:") + 1:]
        return " ".join(e for e in after if e and not e.startswith("["))


@dataclass(frozen=True)
class Cause:
    cls: str  # one of CLASSES
    detail: str  # the sub-kind (program, crate-graph, ...), the blocking dependency, ...
    line: str = ""  # the cratecage: (or script) line it was read from
    entry: str = ""  # needs-grant, directive or probe refused: the policy entry the message offers


def cratecage_messages(stderr: str) -> Iterator[Message]:
    """Each `cratecage:` line with the lines indented deeper below it (a hint, the entry to paste, rustc's
    error), up to cargo's next status line (`   Compiling x v1`, which cargo may print in between)."""
    lines = stderr.splitlines()
    for k, raw in enumerate(lines):
        text = raw.strip()
        if not text.startswith("cratecage:"):
            continue
        indent = len(raw) - len(raw.lstrip())
        more = []
        for follow in lines[k + 1:]:
            if not follow.strip() or len(follow) - len(follow.lstrip()) <= indent or CARGO_STATUS.match(follow):
                break
            more.append(follow)
        yield Message(text, tuple(more))


def messages_by_package(stderr: str, packages: dict[str, Package]) -> dict[str, list[Message]]:
    """The `cratecage:` messages of a build, by the package id they name (build-wide ones under "")."""
    by_label = {(p.name, p.version): pid for pid, p in packages.items()}
    by_name: dict[str, list[str]] = {}
    for pid, p in packages.items():
        by_name.setdefault(p.name, []).append(pid)
    out: dict[str, list[Message]] = {}
    for message in cratecage_messages(stderr):
        subject = message.line.split(": ", 2)[1] if message.line.count(": ") >= 2 else message.line
        pid = ""
        for pattern in SUBJECTS:
            found = list(pattern.finditer(subject))
            if found:
                name, version = found[-1]["name"], found[-1]["version"]
                ids = [by_label[(name, version)]] if (name, version) in by_label else by_name.get(name, [])
                pid = ids[0] if len(ids) == 1 else ""
                break
        out.setdefault(pid, []).append(message)
    return out


def script_stderr(stderr: str, pkg: Package) -> str:
    """The stderr of `pkg`'s failed build-script run, from cargo's `failed to run custom build command`
    block (its lines are indented; the block ends at the next line that is not)."""
    lines = stderr.splitlines()
    head = f"failed to run custom build command for `{pkg.name} v{pkg.version}`"
    for k, line in enumerate(lines):
        if line.startswith("error: ") and head in line:
            block = []
            for follow in lines[k + 1:]:
                if follow and not follow[0].isspace() and not follow.startswith("Caused by"):
                    break
                block.append(follow)
            text = "\n".join(block)
            return text.split("--- stderr", 1)[1] if "--- stderr" in text else ""
    return ""


def classify(pkg: Package, stage: str, messages: list[Message], script_err: str) -> Cause:
    """Why `pkg` failed at `stage` through cratecage, from its messages and its script's stderr."""
    for message in messages:
        if REPLAY_FAILED in message.line:
            text = " ".join([message.line, *(m.strip() for m in message.more)])
            kind = next((k for words, k in REPLAY_KINDS if words in text), replay_errors.OTHER)
            return Cause("replay", kind, message.line)
    denials = [(m, DENIAL.search(m.line)) for m in messages]
    denials = [(m, d) for m, d in denials if d and d["verb"] != "denied as the policy says"]
    # A refusal no entry can lift comes first: what the script did after it (print a log with `tail`, which
    # is refused in turn) is a consequence.
    for m, _d in denials:  # a fallback's refusal points at the grant of what it falls back from: no cause
        if not m.entry and stage == SCRIPT_RAN and "fallback after" not in m.line:
            return Cause("ungrantable", "no entry can allow it", m.line)
    fatal = [(m, d) for m, d in denials if d["verb"] == "denied"]
    for m, d in fatal or (denials if stage == SCRIPT_RAN else []):
        cls, what = DENIAL_CLASSES[d["capability"]]
        return Cause(cls, what, m.line, m.entry)
    for m in messages:
        if any(word in m.line for word in LIMIT_WORDS):
            return Cause("limit", "", m.line)
        if any(word in m.line for word in TOOLCHAIN_WORDS) and REPLAY_FAILED not in m.line:
            return Cause("toolchain", "", m.line)
    gap = next((line.strip() for line in script_err.splitlines()
                if any(word in line.lower() for word in WASM_GAP_WORDS)), "")
    if gap:
        return Cause("wasm gap", "facade", gap)
    first = messages[0].line if messages else next(
        (line.strip() for line in script_err.splitlines() if "panicked" in line or "error" in line.lower()), "")
    return Cause("other", stage, first)


def blocker(pkg: Package, packages: dict[str, Package], failed: dict[str, str]) -> str:
    """The nearest dependency of `pkg` that failed (breadth first), as `name version`."""
    seen, todo = set(), list(pkg.deps)
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        if pid in failed:
            return packages[pid].label
        todo.extend(packages[pid].deps)
    return "?"


def outcome(pid: str, build: Build, native: Build, packages: dict[str, Package],
            messages: dict[str, list[Message]]) -> Cause | None:
    """None when `pid` built in `build`, else why not."""
    pkg = packages[pid]
    if BUILT in build.stages.get(pid, set()):
        return None
    if build.mode != "native" and pid in native.failed:
        return Cause("native", "fails natively too")
    if pid not in build.failed:
        return Cause("blocked", f"by {blocker(pkg, packages, build.failed)}")
    if build.mode == "native":
        return Cause("native", build.failed[pid])
    return classify(pkg, build.failed[pid], messages.get(pid, []), script_stderr(build.stderr, pkg))


# -- build-script outputs, native vs wrapped --------------------------------------------------------------

# Directives that never reach rustc or the linker (rerun-if-*: cratecage adds its policy file and the
# package directory; warnings: it adds its reports), left out of the comparison.
NOT_COMPARED: Final = frozenset({"rerun-if-changed", "rerun-if-env-changed", "warning", "error"})


def normalised(out_dir: str, target: Path) -> list[str]:
    """The directives of a run's output that reach the build, with its OUT_DIR and target directory masked,
    a search path's default kind spelled `native=` (cratecage passes it so, directives.NATIVE_RENDERED_KINDS),
    and `cargo::` spelled as `cargo:`."""
    data = layout.script_output(out_dir)
    if data is None:
        return ["(no output file)"]
    lines = []
    for d in directives.parse(data):
        if d.key in NOT_COMPARED:
            continue
        value = d.value.replace(out_dir, "$OUT_DIR").replace(str(target), "$TARGET")
        if d.key == "rustc-link-search":
            kind, path = directives.split_search(value)
            value = f"{kind if kind not in directives.NATIVE_RENDERED_KINDS else 'native'}={path}"
        lines.append(f"{d.key}={value}")
    return lines


def compare_outputs(native: Build, wrapped: Build, ids: list[str]) -> dict[str, list[str]]:
    """Per package whose build script ran both ways: the directive lines only one side printed (`-` native,
    `+` wrapped); packages whose outputs match are left out."""
    out = {}
    for pid in ids:
        if pid not in native.out_dirs or pid not in wrapped.out_dirs:
            continue
        a = normalised(native.out_dirs[pid], native.target)
        b = normalised(wrapped.out_dirs[pid], wrapped.target)
        if a != b:
            only_a, only_b = Counter(a) - Counter(b), Counter(b) - Counter(a)
            diff = [f"- {line}" for line in only_a.elements()] + [f"+ {line}" for line in only_b.elements()]
            out[pid] = diff or ["(same lines, another order)"]
    return out


# -- the section ------------------------------------------------------------------------------------------

@dataclass
class CompatResult:
    packages: dict[str, Package]
    rows: list[str]  # ids of the packages with build scripts that were part of the build, sorted
    builds: dict[str, Build]
    causes: dict[str, dict[str, Cause | None]]  # mode -> id -> cause (None: built)
    mismatches: dict[str, dict[str, list[str]]]  # wrapped mode -> id -> differing lines
    build_wide: dict[str, list[str]] = field(default_factory=dict)  # mode -> cratecage lines naming no package

    def count(self, mode: str) -> Counter:
        return Counter("built" if c is None else c.cls for c in (self.causes[mode][pid] for pid in self.rows))

    def summary(self) -> dict:
        native = self.builds["native"].seconds
        return {
            "packages_with_build_scripts": len(self.rows),
            "packages": len(self.packages),
            "seconds": {m: b.seconds for m, b in self.builds.items()},
            "ratio": {m: self.builds[m].seconds / native for m in WRAPPED if m in self.builds},
            "counts": {m: dict(self.count(m)) for m in self.builds},
            "crates": {self.packages[pid].label: {m: None if self.causes[m][pid] is None else
                                                  asdict(self.causes[m][pid]) for m in self.builds}
                       for pid in self.rows},
            "mismatches": {m: {self.packages[p].label: d for p, d in mm.items()} for m, mm in self.mismatches.items()},
        }


def fetch(ws: Path, env: dict[str, str]) -> None:
    """The locked crates into cargo's cache (a network fetch the first time), outside any timing; without a
    registry, what the cache holds may still do."""
    for offline in ([], ["--offline"]):
        done = subprocess.run([env["CARGO"], "fetch", "--locked", *offline], env=env, cwd=ws,
                              capture_output=True, text=True)
        if done.returncode == 0:
            return
    raise RuntimeError(f"cargo fetch --locked failed:\n{done.stderr.strip()[-1500:]}")


def bench_compat(env: dict[str, str], wrapper: Path, work: Path, specs: list[str], progress) -> CompatResult:
    """The three builds of the corpus (only `specs` and their dependencies, when given) and their reading."""
    fetch(CORPUS, env)
    packages = corpus_packages(CORPUS, env)
    root = next(pid for pid, p in packages.items() if p.name == "compat-corpus")
    roots = [pid for pid, p in packages.items() if any(s in (p.name, f"{p.name}@{p.version}") for s in specs)]
    if specs and not roots:
        raise RuntimeError(f"no package of the corpus matches {', '.join(specs)}")
    ids = closure(packages, roots or [root])
    rows = sorted((pid for pid in ids if packages[pid].has_script), key=lambda pid: packages[pid].label)
    work.mkdir(parents=True, exist_ok=True)
    empty = work / "empty-policy.toml"
    empty.write_text("# The compatibility bench's empty policy (curated defaults apply).\n")
    envs = {"native": env,
            "empty": dict(env, RUSTC_WRAPPER=str(wrapper), CRATECAGE_POLICY=str(empty)),
            "grants": dict(env, RUSTC_WRAPPER=str(wrapper))}
    progress(f"  {len(packages)} packages, {len(rows)} with build scripts; {' / '.join(MODES)} builds, "
             "clean, --keep-going")
    builds: dict[str, Build] = {}
    for mode in MODES:
        build = run_build(CORPUS, work / f"target-{mode}", envs[mode], mode, packages, specs)
        builds[mode] = build
        ok = sum(1 for pid in rows if BUILT in build.stages.get(pid, set()))
        progress(f"    {mode:<7} {build.seconds:7.1f} s   {ok} of {len(rows)} built (cargo exited {build.exit_code})")
    result = CompatResult(packages, rows, builds, {}, {})
    for mode, build in builds.items():
        messages = messages_by_package(build.stderr, packages) if mode != "native" else {}
        result.causes[mode] = {pid: outcome(pid, build, builds["native"], packages, messages) for pid in rows}
        if mode != "native":
            result.mismatches[mode] = compare_outputs(builds["native"], build, rows)
            result.build_wide[mode] = [m.line for m in messages.get("", [])]
    return result


def cell(cause: Cause | None) -> str:
    return "built" if cause is None else cause.cls


def print_compat(r: CompatResult) -> None:
    native = r.builds["native"].seconds
    print(f"\n  compatibility corpus: {len(r.rows)} packages with build scripts ({len(r.packages)} packages)")
    print(f"  {'crate':<40}" + "".join(f"{m:<19}" for m in MODES))
    for pid in r.rows:
        causes = [r.causes[m][pid] for m in MODES]
        print(f"  {r.packages[pid].label[:39]:<40}" + "".join(f"{cell(c):<19}" for c in causes).rstrip())
        for mode, cause in zip(MODES, causes):
            if cause is None:
                continue
            print(f"      {mode}: {cause.cls}{' (' + cause.detail + ')' if cause.detail else ''}"
                  f"{': ' + cause.entry if cause.entry else ''}")
            if cause.line:
                print(f"        {cause.line[:500]}")
    print(f"\n  {'class':<20}" + "".join(f"{m:>9}" for m in MODES))
    counts = {m: r.count(m) for m in MODES}
    for cls in ("built", *CLASSES):
        if any(counts[m][cls] for m in MODES):
            print(f"  {cls:<20}" + "".join(f"{counts[m][cls]:>9}" for m in MODES))
    for cls in ("replay", "needs-grant"):
        for mode in WRAPPED:
            kinds = Counter(c.detail.split(" ")[0] for c in r.causes[mode].values() if c and c.cls == cls)
            if kinds:
                print(f"    {cls} ({mode}): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print("\n  time (clean, --keep-going): " + "   ".join(
        f"{m} {b.seconds:.1f} s" + (f" (x{b.seconds / native:.2f})" if m != "native" else "")
        for m, b in r.builds.items()))
    short = {m: len(r.rows) - counts[m]["built"] for m in WRAPPED if len(r.rows) > counts[m]["built"]}
    if short:
        print("  (a wrapped build leaves out what failed and what that blocked: "
              + ", ".join(f"{n} crates with build scripts {m}" for m, n in short.items()) + ")")
    for mode in WRAPPED:
        mismatched = r.mismatches.get(mode, {})
        both = sum(1 for pid in r.rows if pid in r.builds["native"].out_dirs and pid in r.builds[mode].out_dirs)
        print(f"  build-script outputs, native vs {mode}: {both - len(mismatched)} of {both} identical "
              "(cfgs, link lines, env, metadata)")
        for pid, diff in mismatched.items():
            print(f"    {r.packages[pid].label}:")
            for line in diff[:8]:
                print(f"      {line[:200]}")
        for line in r.build_wide.get(mode, [])[:5]:
            print(f"  {mode}, build-wide: {line[:300]}")
