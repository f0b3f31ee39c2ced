# cratecage: every target provisions what it needs, so each works on a fresh machine and is quick the
# second time.
#   make setup   .venv with cratecage + a wasm32-wasip1-capable toolchain (rustup target, or std built from
#                rust-src; on Debian without either, Debian's rustc-web packages are installed first)
#   make demo    build fixtures/crates-io through the wrapper, build scripts and proc macros sandboxed, and
#                summarise (cratecage audit: each one's last run, then what ran as wasm and what natively)
#   make test    the whole test suite (.ci/run runs exactly this), on both of cargo's build-dir layouts;
#                installs rustup toolchains 1.99.1 (first-use tests) and the new-layout nightly, and
#                PostgreSQL's server (the proc macros of tests/macro/test_macro_services.py query one)
#   make test-sqlx  sqlx::query_as! in the sandbox, offline (minutes of compiling: not in `make test`)
#   make bench   pass-through overhead and a 50-crate clean build, wrapped vs plain; the compatibility corpus
#                (fixtures/compat-corpus) natively, with an empty policy and with grants
#                (BENCH_ARGS="--only compat" for that section alone)

PYTHON ?= python3
VENV := .venv
CRATECAGE := $(VENV)/bin/cratecage
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc rust-web-clippy
# The toolchain whose cargo builds in the new build-dir layout, for the [new-layout] tests (named once, in
# tests/conftest.py).
NEW_LAYOUT_TOOLCHAIN := $(shell sed -n 's/^NEW_LAYOUT_TOOLCHAIN = "\(.*\)"$$/\1/p' tests/conftest.py)
# The selected toolchain's PATH/RUSTC/RUSTDOC/CARGO, for recipes that run cargo.
TOOLCHAIN_ENV = eval "$$($(CRATECAGE) toolchain env)"

.PHONY: setup venv native-launcher toolchain debian-rust c-tools sccache-tool pg-tools bench-tools fresh-toolchain new-layout-toolchain editor-tools demo test test-sqlx bench clean

setup: venv toolchain native-launcher

venv: $(CRATECAGE)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

# The launchers (shim/cli/launcher.py): the native one (shim/rust/fastpath, built with the host rustc) with
# the Python one beside it as cratecage-py, or the Python one alone where no rustc can build it.
# Its tables come from rustc_args.py, wrapper.py and env.py.
$(CRATECAGE): $(VENV)/.installed shim/cli/launcher.py $(wildcard shim/rust/fastpath/*.rs) \
		shim/cargo/rustc_args.py shim/intercept/wrapper.py shim/cargo/env.py
	$(VENV)/bin/python -m shim.cli.launcher $(CRATECAGE)

# A launcher written before `toolchain` installed a rustc (Python only) becomes the native one.
native-launcher: toolchain
	@[ -e $(CRATECAGE)-py ] || ! command -v rustc >/dev/null || $(VENV)/bin/python -m shim.cli.launcher $(CRATECAGE)

toolchain: venv
	@$(CRATECAGE) toolchain --check 2>/dev/null || $(CRATECAGE) toolchain install || \
	  { $(MAKE) --no-print-directory debian-rust && $(CRATECAGE) toolchain install; }
	@$(CRATECAGE) toolchain

# Debian's packaged Rust with rust-src, rust-lld and wasi-libc: the offline route (notes/toolchain.md).
debian-rust:
	@command -v apt-get >/dev/null || { echo "cratecage: no wasm32-wasip1 toolchain and no apt-get: run 'rustup target add wasm32-wasip1' or install rust-src, rust-lld and a wasi-libc" >&2; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES)

# fixtures/crates-io: serde, anyhow, libc, thiserror, num-traits, typenum, ... with every build script and
# every proc macro (serde_derive, thiserror-impl, rustversion) run as wasm in the sandbox; then the audit:
# each one's last run (a macro crate with its expansions), and its last two lines, counted from the audit
# log, say how many ran as wasm and how many natively.
demo: setup
	@$(TOOLCHAIN_ENV) && cd fixtures/crates-io && \
	  RUSTC_WRAPPER=$(CURDIR)/$(CRATECAGE) CARGO_TARGET_DIR=$(CURDIR)/target/demo cargo run --locked && \
	  $(CURDIR)/$(CRATECAGE) audit $(CURDIR)/target/demo

# The native programs the -sys tests grant to build scripts: a C compiler, an archiver, pkg-config, and
# zlib's headers and .pc file (tests/host/test_spawn.py builds libz-sys against them); cmake for the cmake
# crate (tests/build/test_build_std_gaps.py); llvm-mc and objcopy build the hostile linker inputs of
# tests/confine/test_elfcheck.py and test_linkinput.py (objects for other machines).
C_PACKAGES := gcc libc6-dev binutils pkg-config zlib1g-dev llvm cmake
c-tools:
	@command -v cc >/dev/null && command -v ar >/dev/null && command -v pkg-config >/dev/null && \
	  command -v llvm-mc >/dev/null && command -v objcopy >/dev/null && command -v cmake >/dev/null && \
	  pkg-config --exists zlib || { \
	  command -v apt-get >/dev/null || { echo "cratecage: the tests need cc, ar, pkg-config, llvm-mc, objcopy, cmake and zlib's development files: install them" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(C_PACKAGES); }

# tests/compile/test_sccache.py runs cratecage's own compiles through Debian's sccache (CRATECAGE_WRAPPER) on a
# private disk cache. Debian's build has no Redis, S3, GCS or GHA support (`sccache --help`), so no
# redis-server is installed for it.
sccache-tool:
	@command -v sccache >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "cratecage: tests/compile/test_sccache.py needs sccache: install it (Debian's package, or 'cargo install sccache')" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends sccache; }

# PostgreSQL's server (initdb, pg_ctl, postgres, psql in /usr/lib/postgresql/<version>/bin): tests/postgres.py
# starts a throwaway cluster on a loopback port that the proc macros of tests/macro/test_macro_services.py
# query at expansion time.
PG_PACKAGES := postgresql
pg-tools:
	@ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl /usr/lib/postgresql/*/bin/psql >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null || { echo "cratecage: the proc-macro service tests need PostgreSQL's server (initdb, pg_ctl, psql): install Debian's postgresql package or your system's equivalent" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(PG_PACKAGES); }

# tests/toolchain/test_first_use.py and test_ci_recipe.py need a rustup toolchain without the wasm32-wasip1 target: they
# copy this one (hard links) into private rustup homes and add the target there, never to this one. Keep it
# equal to FRESH_TOOLCHAIN in tests/fresh_rustup.py.
FRESH_TOOLCHAIN := 1.99.1
fresh-toolchain:
	@command -v rustup >/dev/null || { echo "cratecage: the first-use tests need rustup (rustup.rs) and its toolchain $(FRESH_TOOLCHAIN)" >&2; exit 1; }
	@rustup toolchain list | grep -q '^$(FRESH_TOOLCHAIN)-' || rustup toolchain install $(FRESH_TOOLCHAIN) --profile minimal --no-self-update || \
	  { echo "cratecage: cannot install toolchain $(FRESH_TOOLCHAIN) (tests/toolchain/test_first_use.py needs it): is rustup's server reachable?" >&2; exit 1; }

# The tests build every cargo fixture with the selected toolchain (cargo's old layout) and this one (the new
# layout: notes/cargo-build-dir-layout.md); quick when it is there already.
new-layout-toolchain:
	@command -v rustup >/dev/null || { echo "cratecage: the tests need rustup for the toolchain $(NEW_LAYOUT_TOOLCHAIN) (cargo's new build-dir layout): install rustup, then run 'rustup toolchain install $(NEW_LAYOUT_TOOLCHAIN) --profile minimal --target wasm32-wasip1'" >&2; exit 1; }
	@sysroot="$$(rustup run $(NEW_LAYOUT_TOOLCHAIN) rustc --print sysroot 2>/dev/null)" && \
	  [ -d "$$sysroot/lib/rustlib/wasm32-wasip1" ] || \
	  rustup toolchain install $(NEW_LAYOUT_TOOLCHAIN) --profile minimal --target wasm32-wasip1 || \
	  { echo "cratecage: could not install the toolchain $(NEW_LAYOUT_TOOLCHAIN) with wasm32-wasip1, which the [new-layout] tests need: run 'rustup toolchain install $(NEW_LAYOUT_TOOLCHAIN) --profile minimal --target wasm32-wasip1'" >&2; exit 1; }

# tests/macro/test_macro_tools.py runs the real rust-analyzer and clippy on the toolchain the tests use (found
# with `rustup which`): the rustup components, added when missing.
editor-tools: setup
	@command -v rustup >/dev/null || { echo "cratecage: the tests need rustup for the rust-analyzer and clippy components (tests/macro/test_macro_tools.py): install rustup" >&2; exit 1; }
	@{ rustup which rust-analyzer && rustup which cargo-clippy; } >/dev/null 2>&1 || rustup component add rust-analyzer clippy || \
	  { echo "cratecage: could not add the rustup components rust-analyzer and clippy, which tests/macro/test_macro_tools.py needs: run 'rustup component add rust-analyzer clippy'" >&2; exit 1; }

test: setup c-tools sccache-tool pg-tools fresh-toolchain new-layout-toolchain editor-tools
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# sqlx::query_as! expanding in the sandbox, offline (tests/macro/test_macro_sqlx.py): left out of `make test`
# because its first build compiles sqlx's ~130 crates natively and sqlx-macros' closure for wasm (minutes).
test-sqlx: setup
	$(VENV)/bin/python -m pytest -q -m sqlx tests/macro/test_macro_sqlx.py $(PYTEST_ARGS)

# The compatibility corpus of `make bench` links openssl-sys against the system OpenSSL: its headers and
# .pc file (the other -sys crates there build bundled sources with what c-tools installs).
BENCH_PACKAGES := libssl-dev
bench-tools: c-tools
	@pkg-config --exists openssl || { \
	  command -v apt-get >/dev/null || { echo "cratecage: the compatibility bench needs OpenSSL's development files (libssl-dev): install them" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES); }

bench: setup bench-tools
	$(VENV)/bin/python tests/bench.py $(BENCH_ARGS)

clean:
	rm -rf target $(VENV)
