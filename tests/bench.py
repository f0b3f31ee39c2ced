"""What does running cargo through cratecage cost? `make bench` (`.venv/bin/python tests/bench.py`).

cratecage is cargo's RUSTC_WRAPPER, so cargo starts it once per rustc call; whatever it costs is paid on
every compile a build makes. That is what this measures, wrapped against plain, side by side in one run:

  1. pass-through overhead per rustc call: small real library sources compiled with the arguments cargo
     uses, alternating `rustc <args>` and `cratecage rustc <args>` (in alternating order, so machine noise
     hits both alike); the overhead is taken per pair. `rustc -vV` is measured the same way: that call is
     not exec'd but run as a subprocess with cratecage's line appended.
  2. a clean `cargo build` of a generated 50-crate workspace (a dependency DAG, one bin, two build
     scripts, whose compiles also run the wrapper's toolchain check), plain vs wrapped, alternating rounds,
     each from an empty target directory (separate ones: the wrapper changes hashes).

A no-op rebuild is not measured: cargo makes no rustc calls when everything is fresh, so the wrapper never
runs and the comparison would measure nothing. Targets (from the issue): median pass-through overhead
<= 15 ms per call, 50-crate clean-build ratio <= 1.10. They are reported as PASS/FAIL; the exit status is 0
either way (this is a report) unless something fails to build or run (exit 1).

Standard library only. Workspaces go under target/bench/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shim import toolchain  # noqa: E402  (needs ROOT on sys.path)
from shim.errors import CratecageError  # noqa: E402

WRAPPER = ROOT / ".venv" / "bin" / "cratecage"
BENCH_DIR = ROOT / "target" / "bench"
MAX_OVERHEAD_MS = 15.0
MAX_BUILD_RATIO = 1.10
CRATES = 50
BUILD_SCRIPT_CRATES = (7, 31)  # these members get a tiny build.rs


class BenchError(Exception):
    """Something did not build or run: the numbers would be meaningless."""


# -- environment ------------------------------------------------------------------------------------------

def _inherited_build_var(name: str) -> bool:
    """Variables from the caller that would change what cargo/rustc do (CARGO_HOME is kept: the default)."""
    if name == "CARGO_HOME":
        return False
    return (name.startswith(("CARGO_", "RUSTC_"))
            or name in ("CARGO", "RUSTC", "RUSTDOC", "RUSTFLAGS", "RUSTDOCFLAGS", "CRATECAGE_WRAPPER"))


def clean_env() -> dict[str, str]:
    """The caller's environment without build variables, plus the selected toolchain's PATH/RUSTC/..."""
    env = {k: v for k, v in os.environ.items() if not _inherited_build_var(k)}
    try:
        env.update(toolchain.env_vars(toolchain.resolve(environ=env), environ=env))
    except CratecageError as err:
        raise BenchError(f"no toolchain: {err.render()}") from None
    if "CARGO" not in env:
        raise BenchError(f"no cargo next to {env['RUSTC']}")
    # An empty wrapper variable overrides a `build.rustc-wrapper` (e.g. sccache) in a cargo config.
    env["RUSTC_WRAPPER"] = ""
    env["RUSTC_WORKSPACE_WRAPPER"] = ""
    return env


# -- timing -----------------------------------------------------------------------------------------------

def timed_run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """Run `cmd` to completion; seconds of wall time. Raises BenchError if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(done.stderr.decode(errors="replace").strip().splitlines()[-15:])
        raise BenchError(f"`{' '.join(map(str, cmd))}` exited {done.returncode}:\n{tail}")
    return elapsed


def alternate(plain, wrapped, n: int) -> tuple[list[float], list[float]]:
    """Call the two zero-argument timers n times each, in pairs whose order flips every pair."""
    plain_times: list[float] = []
    wrapped_times: list[float] = []
    for i in range(n):
        if i % 2 == 0:
            plain_times.append(plain())
            wrapped_times.append(wrapped())
        else:
            wrapped_times.append(wrapped())
            plain_times.append(plain())
    return plain_times, wrapped_times


@dataclass
class Comparison:
    """Paired wall times (seconds) of one thing done plain and wrapped."""

    name: str
    plain: list[float]
    wrapped: list[float]
    notes: list[str] = field(default_factory=list)

    @property
    def diffs(self) -> list[float]:
        return [w - p for p, w in zip(self.plain, self.wrapped)]

    @property
    def ratios(self) -> list[float]:
        return [w / p for p, w in zip(self.plain, self.wrapped)]

    def summary(self) -> dict:
        med_p, med_w = statistics.median(self.plain), statistics.median(self.wrapped)
        return {
            "name": self.name,
            "n": len(self.plain),
            "plain_median_s": med_p,
            "wrapped_median_s": med_w,
            "overhead_median_s": statistics.median(self.diffs),
            "overhead_min_s": min(self.diffs),
            "overhead_max_s": max(self.diffs),
            "ratio_of_medians": med_w / med_p,
            "ratio_min": min(self.ratios),
            "ratio_max": max(self.ratios),
        }


def pooled(name: str, parts: list[Comparison]) -> Comparison:
    return Comparison(name, [t for c in parts for t in c.plain], [t for c in parts for t in c.wrapped])


# -- 1. pass-through per rustc call -----------------------------------------------------------------------

SMALL_LIBS = {
    "geometry": """
use std::fmt;
use std::ops::Add;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point { pub x: f64, pub y: f64 }

impl Add for Point {
    type Output = Point;
    fn add(self, o: Point) -> Point { Point { x: self.x + o.x, y: self.y + o.y } }
}

pub trait Shape {
    fn area(&self) -> f64;
    fn name(&self) -> &'static str;
}

pub struct Circle { pub center: Point, pub r: f64 }
pub struct Rect { pub min: Point, pub max: Point }

impl Shape for Circle {
    fn area(&self) -> f64 { std::f64::consts::PI * self.r * self.r }
    fn name(&self) -> &'static str { "circle" }
}

impl Shape for Rect {
    fn area(&self) -> f64 { (self.max.x - self.min.x) * (self.max.y - self.min.y) }
    fn name(&self) -> &'static str { "rect" }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { write!(f, "({:.2}, {:.2})", self.x, self.y) }
}

pub fn total_area(shapes: &[Box<dyn Shape>]) -> f64 { shapes.iter().map(|s| s.area()).sum() }
""",
    "wordstats": """
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Stats { pub words: usize, pub lines: usize, pub longest: String }

pub fn frequencies(text: &str) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for word in text.split_whitespace() {
        let w: String = word.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
        if !w.is_empty() {
            *map.entry(w).or_insert(0) += 1;
        }
    }
    map
}

pub fn top(text: &str, n: usize) -> Vec<(String, usize)> {
    let mut all: Vec<_> = frequencies(text).into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

pub fn stats(text: &str) -> Stats {
    let mut s = Stats::default();
    for line in text.lines() {
        s.lines += 1;
        for word in line.split_whitespace() {
            s.words += 1;
            if word.len() > s.longest.len() {
                s.longest = word.to_string();
            }
        }
    }
    s
}
""",
    "ringbuf": """
pub struct Ring<T> { buf: Vec<Option<T>>, head: usize, len: usize }

impl<T: Clone> Ring<T> {
    pub fn with_capacity(cap: usize) -> Self { Ring { buf: vec![None; cap.max(1)], head: 0, len: 0 } }
    pub fn capacity(&self) -> usize { self.buf.len() }
    pub fn len(&self) -> usize { self.len }
    pub fn is_empty(&self) -> bool { self.len == 0 }

    pub fn push(&mut self, value: T) -> Option<T> {
        let cap = self.capacity();
        let slot = (self.head + self.len) % cap;
        if self.len == cap {
            let old = self.buf[self.head].replace(value);
            self.head = (self.head + 1) % cap;
            old
        } else {
            self.buf[slot] = Some(value);
            self.len += 1;
            None
        }
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 { return None; }
        let v = self.buf[self.head].take();
        self.head = (self.head + 1) % self.capacity();
        self.len -= 1;
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).filter_map(move |i| self.buf[(self.head + i) % self.capacity()].as_ref())
    }
}
""",
}


def lib_args(name: str, src: Path, out_dir: Path) -> list[str]:
    """Roughly what cargo passes for a dev-profile library of a workspace member."""
    return [
        "--crate-name", name, "--edition", "2021", str(src), "--crate-type", "lib",
        "--emit=dep-info,metadata,link", "-C", "embed-bitcode=no", "-C", "debuginfo=2",
        "-C", f"metadata={name}0bench", "--out-dir", str(out_dir),
    ]


def compare_call(name: str, rustc: str, args_for, env: dict[str, str], n: int) -> Comparison:
    """`rustc args` vs `cratecage rustc args`, n pairs after one untimed warm-up of each."""
    def plain() -> float:
        return timed_run([rustc, *args_for("plain")], env)

    def wrapped() -> float:
        return timed_run([str(WRAPPER), rustc, *args_for("wrapped")], env)

    plain(), wrapped()
    return Comparison(name, *alternate(plain, wrapped, n))


def bench_passthrough(env: dict[str, str], n: int) -> tuple[list[Comparison], Comparison]:
    """Per-call cost on small library compiles, and on `rustc -vV`."""
    rustc = env["RUSTC"]
    work = BENCH_DIR / "calls"
    shutil.rmtree(work, ignore_errors=True)
    for side in ("plain", "wrapped"):
        (work / "out" / side).mkdir(parents=True)
    compiles = []
    for name, text in SMALL_LIBS.items():
        src = work / "src" / f"{name}.rs"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text.lstrip())

        def args_for(side: str, name=name, src=src) -> list[str]:
            return lib_args(name, src, work / "out" / side)

        progress(f"  compile {name}.rs ({src.read_text().count(chr(10))} lines) x{n} pairs")
        compiles.append(compare_call(f"lib {name}", rustc, args_for, env, n))
    progress(f"  rustc -vV x{n} pairs")
    version = compare_call("rustc -vV", rustc, lambda side: ["-vV"], env, n)
    return compiles, version


# -- 2. clean build of a generated 50-crate workspace -----------------------------------------------------

def crate_name(i: int) -> str:
    return f"c{i:02}"


def dependency_dag(n: int, seed: int = 50) -> list[list[int]]:
    """deps[i]: up to 3 distinct earlier crates, biased towards recent ones so the graph has depth."""
    rng = random.Random(seed)
    deps: list[list[int]] = [[]]
    for i in range(1, n):
        window = list(range(max(0, i - 8), i))
        deps.append(sorted(rng.sample(window, min(len(window), rng.randint(1, 3)))))
    return deps


def leaves(deps: list[list[int]]) -> list[int]:
    used = {d for ds in deps for d in ds}
    return [i for i in range(len(deps)) if i not in used]


def manifest(name: str, deps: list[str], *, bin_crate: bool = False) -> str:
    lines = ["[package]", f'name = "{name}"', 'version = "0.1.0"', 'edition = "2021"', "publish = false", ""]
    if bin_crate:
        lines += ["[[bin]]", f'name = "{name}"', 'path = "src/main.rs"', ""]
    lines.append("[dependencies]")
    lines += [f'{d} = {{ path = "../{d}" }}' for d in deps]
    return "\n".join(lines) + "\n"


LIB_TEMPLATE = """//! Generated by tests/bench.py: member {i} of the 50-crate benchmark workspace.
use std::collections::BTreeMap;
use std::fmt;
{gen_include}
pub const SEED: u64 = {seed};

pub trait Weigh {{
    fn weight(&self) -> u64;
}}

#[derive(Debug, Clone, PartialEq)]
pub struct Node<T> {{
    pub id: u32,
    pub label: String,
    pub items: Vec<T>,
}}

impl<T: Clone + fmt::Debug> Node<T> {{
    pub fn new(id: u32, label: &str) -> Self {{
        Node {{ id, label: label.to_string(), items: Vec::new() }}
    }}
    pub fn push(&mut self, item: T) -> &mut Self {{
        self.items.push(item);
        self
    }}
    pub fn len(&self) -> usize {{ self.items.len() }}
    pub fn is_empty(&self) -> bool {{ self.items.is_empty() }}
}}

impl<T> Weigh for Node<T> {{
    fn weight(&self) -> u64 {{ u64::from(self.id) * SEED + self.items.len() as u64 }}
}}

impl<T: fmt::Debug> fmt::Display for Node<T> {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        write!(f, "{{}}#{{}} {{:?}}", self.label, self.id, self.items)
    }}
}}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {{ Low, Mid, High }}

pub fn classify(x: u64) -> Level {{
    match x % 3 {{ 0 => Level::Low, 1 => Level::Mid, _ => Level::High }}
}}

pub fn histogram(values: &[u64]) -> BTreeMap<Level, usize> {{
    let mut map = BTreeMap::new();
    for v in values {{
        *map.entry(classify(*v)).or_insert(0) += 1;
    }}
    map
}}

pub fn heaviest<W: Weigh>(items: &[W]) -> Option<&W> {{
    items.iter().max_by_key(|w| w.weight())
}}

pub fn mix(x: u64) -> u64 {{
    let acc = x.wrapping_mul(SEED ^ 0x9e37_79b9_7f4a_7c15).rotate_left({rot});
    acc{dep_calls}
}}
"""

BUILD_SCRIPT = """// Generated by tests/bench.py: a tiny build script writing one file to OUT_DIR.
use std::{env, fs, path::Path};

fn main() {
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let pkg = env::var("CARGO_PKG_NAME").unwrap_or_default();
    fs::write(Path::new(&out).join("generated.rs"), format!("pub const GENERATED: &str = {:?};\\n", pkg))
        .expect("write generated.rs");
    println!("cargo:rerun-if-changed=build.rs");
}
"""

MAIN_TEMPLATE = """//! Generated by tests/bench.py: the binary on top of the 50-crate workspace's leaves.
fn main() {{
    let mut total = 0u64;
{calls}
    println!("{{total}}");
}}
"""


def lib_source(i: int, deps: list[int]) -> str:
    dep_calls = "".join(f" ^ {crate_name(d)}::mix(x.wrapping_add({k + 1}))" for k, d in enumerate(deps))
    gen_include = ('include!(concat!(env!("OUT_DIR"), "/generated.rs"));\n'
                   if i in BUILD_SCRIPT_CRATES else "")
    return LIB_TEMPLATE.format(i=i, seed=1000 + 7 * i, rot=i % 61 + 1, dep_calls=dep_calls,
                               gen_include=gen_include)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def generate_workspace(root: Path, n: int = CRATES) -> dict:
    """Write the workspace; returns a description (counts) for the report."""
    shutil.rmtree(root, ignore_errors=True)
    deps = dependency_dag(n)
    for i in range(n):
        crate = root / "crates" / crate_name(i)
        write(crate / "Cargo.toml", manifest(crate_name(i), [crate_name(d) for d in deps[i]]))
        write(crate / "src" / "lib.rs", lib_source(i, deps[i]))
        if i in BUILD_SCRIPT_CRATES:
            write(crate / "build.rs", BUILD_SCRIPT)
    tops = leaves(deps)
    app = root / "crates" / "app"
    write(app / "Cargo.toml", manifest("app", [crate_name(i) for i in tops], bin_crate=True))
    calls = "\n".join(f"    total ^= {crate_name(i)}::mix({i});" for i in tops)
    write(app / "src" / "main.rs", MAIN_TEMPLATE.format(calls=calls))
    write(root / "Cargo.toml", '[workspace]\nresolver = "2"\nmembers = ["crates/*"]\n')
    return {
        "lib_crates": n,
        "bin_crates": 1,
        "build_scripts": len(BUILD_SCRIPT_CRATES),
        "edges": sum(len(d) for d in deps),
        "leaves": len(tops),
        "rustc_compiles": n + 1 + len(BUILD_SCRIPT_CRATES),
        "lib_lines": lib_source(n - 1, deps[n - 1]).count("\n"),
    }


def cargo_build(ws: Path, target: Path, env: dict[str, str]) -> float:
    shutil.rmtree(target, ignore_errors=True)
    build_env = dict(env, CARGO_TARGET_DIR=str(target), CARGO_INCREMENTAL="0")
    return timed_run([env["CARGO"], "build", "--offline", "--quiet"], build_env, cwd=ws)


def bench_workspace(env: dict[str, str], rounds: int) -> tuple[Comparison, dict]:
    ws = BENCH_DIR / "ws50"
    info = generate_workspace(ws)
    timed_run([env["CARGO"], "generate-lockfile", "--offline"], env, cwd=ws)  # not part of any round
    wrapped_env = dict(env, RUSTC_WRAPPER=str(WRAPPER))

    def plain() -> float:
        t = cargo_build(ws, ws / "target-plain", env)
        progress(f"    plain   {t:7.2f} s")
        return t

    def wrapped() -> float:
        t = cargo_build(ws, ws / "target-wrapped", wrapped_env)
        progress(f"    wrapped {t:7.2f} s")
        return t

    progress(f"  {info['lib_crates']} libs + 1 bin, {info['build_scripts']} build scripts, "
             f"{info['rustc_compiles']} rustc compiles per build; {rounds} round(s), clean each time")
    comparison = Comparison("clean build ws50", *alternate(plain, wrapped, rounds))
    comparison.notes.append(f"{info['build_scripts']} build-script compiles also run the wrapper's "
                            "toolchain check (two rustc probes the first time,\n"
                            "        then a remembered answer: shim/capable.py)")
    return comparison, info


# -- report -----------------------------------------------------------------------------------------------

def load_average() -> float:
    return os.getloadavg()[0]


def progress(text: str) -> None:
    print(text, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def check(value: float, limit: float) -> dict:
    return {"value": value, "limit": limit, "pass": value <= limit}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_calls_table(rows: list[Comparison]) -> None:
    print(f"  {'call':<16}{'n':>4}{'plain ms':>10}{'wrapped ms':>12}{'overhead ms':>13}"
          f"{'(min .. max)':>22}{'ratio':>8}")
    for row in rows:
        s = row.summary()
        spread = f"({s['overhead_min_s'] * 1000:.1f} .. {s['overhead_max_s'] * 1000:.1f})"
        print(f"  {row.name:<16}{s['n']:>4}{ms(s['plain_median_s']):>10}{ms(s['wrapped_median_s']):>12}"
              f"{ms(s['overhead_median_s']):>13}{spread:>22}{s['ratio_of_medians']:>8.3f}")


def print_build_table(build: Comparison) -> None:
    for i, (p, w) in enumerate(zip(build.plain, build.wrapped), 1):
        print(f"  round {i}: plain {p:7.2f} s   wrapped {w:7.2f} s   ratio {w / p:.3f}")
    s = build.summary()
    print(f"  median : plain {s['plain_median_s']:7.2f} s   wrapped {s['wrapped_median_s']:7.2f} s   "
          f"ratio of medians {s['ratio_of_medians']:.3f} "
          f"(rounds: {s['ratio_min']:.3f} .. {s['ratio_max']:.3f})")
    for note in build.notes:
        print(f"  note: {note}")


def report(calls: list[Comparison], version: Comparison, build: Comparison, info: dict) -> dict:
    all_calls = pooled("all lib compiles", calls)
    overhead = all_calls.summary()["overhead_median_s"] * 1000
    ratio = build.summary()["ratio_of_medians"]
    print("\nSummary (medians; overhead = wrapped - plain per pair; ratio = wrapped / plain)")
    print_calls_table([*calls, all_calls, version])
    print()
    print_build_table(build)
    predicted = info["rustc_compiles"] * overhead / 1000
    print(f"  ({info['rustc_compiles']} compiles x {overhead:.1f} ms = {predicted:.2f} s of wrapper time per "
          f"build, spread over {os.cpu_count()} cores by cargo)")
    print()
    checks = {
        "passthrough_overhead_ms": check(overhead, MAX_OVERHEAD_MS),
        "clean_build_ratio": check(ratio, MAX_BUILD_RATIO),
    }
    print(f"  {verdict(overhead <= MAX_OVERHEAD_MS)}  median pass-through overhead {overhead:.1f} ms "
          f"per call (target <= {MAX_OVERHEAD_MS:.0f} ms)")
    print(f"  {verdict(ratio <= MAX_BUILD_RATIO)}  50-crate clean build ratio {ratio:.3f} "
          f"(target <= {MAX_BUILD_RATIO:.2f})")
    return checks


def results_json(args, env, calls, version, build, info, checks) -> dict:
    return {
        "config": {"calls": args.calls, "rounds": args.rounds, "quick": args.quick, "cpus": os.cpu_count(),
                   "rustc": env["RUSTC"], "cargo": env["CARGO"], "wrapper": str(WRAPPER)},
        "passthrough": [c.summary() | {"raw": asdict(c)} for c in calls],
        "passthrough_all": pooled("all lib compiles", calls).summary(),
        "version_query": version.summary() | {"raw": asdict(version)},
        "clean_build": build.summary() | {"raw": asdict(build), "workspace": info},
        "checks": checks,
    }


# -- main -------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help="pairs per pass-through measurement (default 30)")
    parser.add_argument("--rounds", type=int, help="clean-build rounds, each plain + wrapped (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 pairs, 1 round")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    args = parser.parse_args(argv)
    args.calls = args.calls or (5 if args.quick else 30)
    args.rounds = args.rounds or (1 if args.quick else 5)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(WRAPPER, os.X_OK):
        print(f"bench: {WRAPPER} not found; run `make setup` first", file=sys.stderr)
        return 1
    try:
        env = clean_env()
        progress(f"cratecage bench: rustc {env['RUSTC']}, cargo {env['CARGO']}, {os.cpu_count()} cpus, "
                 f"load average {load_average():.2f} (other work on the machine adds noise to both sides)")
        progress("1. pass-through per rustc call (plain vs wrapped, alternating)")
        calls, version = bench_passthrough(env, args.calls)
        progress("2. clean build of a generated 50-crate workspace (plain vs wrapped, alternating)")
        build, info = bench_workspace(env, args.rounds)
    except BenchError as err:
        print(f"\nbench: FAILED, no numbers: {err}", file=sys.stderr)
        return 1
    checks = report(calls, version, build, info)
    if args.json:
        data = results_json(args, env, calls, version, build, info, checks)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
