"""Build-script stdout, parsed as cargo's BuildOutput::parse does, and filtered by the policy (shim/build/directives.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from root_dirs import not_roots, root_dir  # noqa: F401 - a fixture
from shim.build import directives
from shim.build.run import filter_stdout
from shim.build.directives import RULES, Directive, filter, parse, parse_lines
from shim.cargo.directives import CARGO_KEYS, OLD_SYNTAX_KEYS

OUT = "/t/debug/build/foo-1234/out"
ENV_DENIED = "rustc, the linker or a program they start reads this variable: "


@pytest.mark.parametrize(
    "line, key, value, new_syntax",
    [
        ("cargo:rustc-cfg=has_foo", "rustc-cfg", "has_foo", False),
        ("cargo::rustc-cfg=has_foo", "rustc-cfg", "has_foo", True),
        ("   cargo:rustc-cfg=has_foo   ", "rustc-cfg", "has_foo", False),
        ("\tcargo::rustc-env=A=b c\r", "rustc-env", "A=b c", True),
        ("cargo:rustc-env=A=b\rc", "rustc-env", "A=b\rc", False),  # only the ends are trimmed
        ("\u3000cargo:warning=hi\u2028", "warning", "hi", False),  # Rust's whitespace includes these
        ("cargo:rustc-link-arg=-Wl,-rpath,/x", "rustc-link-arg", "-Wl,-rpath,/x", False),
        ("cargo:rustc-link-arg-bin=server=-Wl,--cref", "rustc-link-arg-bin", "server=-Wl,--cref", False),
        # old form: anything that is not a reserved key is metadata
        ("cargo:root=/x/y", "metadata", "root=/x/y", False),
        ("cargo:error=boom", "metadata", "error=boom", False),
        ("cargo:metadata=a=b", "metadata", "metadata=a=b", False),
        ("cargo: rustc-env=LD_PRELOAD=/evil.so", "metadata", " rustc-env=LD_PRELOAD=/evil.so", False),
        ("cargo:rustc-envX=1", "metadata", "rustc-envX=1", False),
        # new form: metadata is explicit, error exists
        ("cargo::metadata=root=/x/y", "metadata", "root=/x/y", True),
        ("cargo::error=boom", "error", "boom", True),
        ("cargo::warning=", "warning", "", True),
    ],
)
def test_directives_parse_as_cargo_parses_them(line: str, key: str, value: str, new_syntax: bool) -> None:
    (d,) = parse(line + "\n")
    assert (d.key, d.value, d.new_syntax, d.problem, d.raw) == (key, value, new_syntax, "", line)


@pytest.mark.parametrize(
    "line",
    ["hello", "  cargo rustc-cfg=x", "Cargo:rustc-cfg=x", "xcargo:rustc-cfg=x", "\x1ccargo:rustc-cfg=x", " ",
     "cargo", "#cargo:rustc-cfg=x"],
)
def test_other_lines_are_not_directives(line: str) -> None:
    assert parse(line) == [] and list(parse_lines(line + "\n")) == [line]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("cargo::rustc-cfg", "expected `cargo::KEY=VALUE`, found no `=`"),
        ("cargo::foo=bar", "unknown key `foo`"),
        ("cargo:: rustc-cfg=x", "unknown key ` rustc-cfg`"),
        ("cargo:whatever", "`metadata` needs `NAME=VALUE`, found no `=`"),
        ("cargo::metadata=novalue", "`metadata` needs `NAME=VALUE`, found no `=`"),
        ("cargo:rustc-env=NOVALUE", "`rustc-env` needs `NAME=VALUE`, found no `=`"),
        ("cargo::rustc-link-arg-bin=noarg", "`rustc-link-arg-bin` needs `NAME=VALUE`, found no `=`"),
        ("cargo:rustc-flags=-lfoo -Wl,x", "only -l and -L flags are allowed in `rustc-flags`, found `-Wl,x`"),
        ("cargo:rustc-flags=-L", "`-L` in `rustc-flags` has no value"),
    ],
)
def test_lines_cargo_rejects_are_marked(line: str, problem: str) -> None:
    (d,) = parse(line)
    assert d.problem == problem and d.canonical is None


def test_lines_split_on_newline_only_and_non_utf8_lines_are_skipped() -> None:
    out = b"cargo:rustc-cfg=a\r\ncargo:rustc-cfg=\xff\n\xfe\ncargo:rustc-cfg=b\rcargo:rustc-cfg=c\n"
    assert [(d.key, d.value) for d in parse(out)] == [("rustc-cfg", "a"), ("rustc-cfg", "b\rcargo:rustc-cfg=c")]


def test_every_cargo_key_has_a_rule() -> None:
    assert set(RULES) == set(CARGO_KEYS)
    assert set(OLD_SYNTAX_KEYS) | {"error", "metadata"} == set(CARGO_KEYS)


@pytest.mark.parametrize(
    "line, canonical",
    [
        ("  cargo:rustc-cfg=x  \r", "cargo:rustc-cfg=x"),
        ("cargo::rustc-cfg=x", "cargo::rustc-cfg=x"),
        ("cargo:root=/x", "cargo:root=/x"),
        ("cargo::metadata=root=/x", "cargo::metadata=root=/x"),
        ("\tcargo::rustc-env=A=1 \r", "cargo::rustc-env=A=1"),
    ],
)
def test_canonical_lines_keep_the_syntax_and_drop_the_whitespace(line: str, canonical: str) -> None:
    assert parse(line)[0].canonical == canonical


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("cargo:=-_ \t\r\x0b\u3000\x1c/LDPRELOADrustc-envlinkargmetaX")),
               max_size=40))
def test_canonical_lines_parse_back_to_the_same_directive(text: str) -> None:
    for d in parse(text):
        if d.canonical is not None:
            (again,) = parse(d.canonical)
            assert (again.key, again.value, again.new_syntax, again.problem) == (d.key, d.value, d.new_syntax, "")


# --- the filter ---------------------------------------------------------------------------------------------

def nothing_granted(key: str, target: str) -> bool:
    return False


def run(stdout: str | bytes, out_dir: str = OUT, grant: directives.GrantCheck = nothing_granted,
        env_visible: directives.EnvCheck = directives._no_env, package_dir: str = "", hidden: tuple[str, ...] = (),
        system_dirs: tuple[str, ...] = (), target: str = "") -> tuple[list[str], list[tuple[str, str]]]:
    """The filter; the linker's default directories are `system_dirs` (none: no system library is found)."""
    kept, denied = filter(stdout, out_dir=out_dir, grant_allows_directive=grant, env_visible=env_visible,
                          package_dir=package_dir, hidden=hidden, system_dirs=system_dirs, target=target)
    return kept, [(d.raw, reason) for d, reason in denied]


@pytest.mark.parametrize(
    "line",
    ["cargo:rerun-if-changed=build.rs", "cargo:rustc-cfg=has_foo",
     'cargo::rustc-check-cfg=cfg(has_foo, values("a"))', "cargo:warning=careful", "cargo::error=broken",
     "cargo::metadata=include=/x", "cargo:include=/x", "cargo:rustc-env=GIT_HASH=abc123",
     f"cargo:rustc-link-search=native={OUT}/lib", f"cargo::rustc-link-search=native={OUT}/a/./b"],
)
def test_harmless_directives_pass_without_a_grant(line: str) -> None:
    assert run(line + "\n") == ([line], [])


@pytest.mark.parametrize(
    "line, rendered",
    [(f"cargo:rustc-link-search={OUT}", f"cargo:rustc-link-search=native={OUT}"),
     (f"cargo::rustc-link-search=all={OUT}/", f"cargo::rustc-link-search=native={OUT}/"),
     (f"  cargo:rustc-link-search=all={OUT}/lib\r", f"cargo:rustc-link-search=native={OUT}/lib")],
)
def test_search_paths_into_out_dir_search_native_libraries_only(line: str, rendered: str) -> None:
    assert run(line + "\n") == ([rendered], [])


@pytest.mark.parametrize(
    "line, reason",
    [
        ("cargo:rustc-link-arg=-Wl,-rpath,/tmp", "needs a grant"),
        ("cargo::rustc-link-arg-bins=-fuse-ld=/tmp/ld", "needs a grant"),
        ("cargo:rustc-cdylib-link-arg=-x", "needs a grant"),
        ("cargo:rustc-flags=-L /usr/lib -lz", "needs a grant"),
        ("cargo:rustc-env=LD_PRELOAD=/tmp/evil.so", ENV_DENIED),
        ("   cargo:rustc-env=LD_PRELOAD=/tmp/evil.so", ENV_DENIED),
        ("cargo:rustc-env=LD_PRELOAD=/tmp/evil.so\r", ENV_DENIED),
        ("\t cargo::rustc-env=LD_PRELOAD=/tmp/evil.so \r", ENV_DENIED),
        ("cargo:rustc-env=ld_preload=/tmp/evil.so", ENV_DENIED),
        ("cargo:rustc-env=PATH=/tmp", ENV_DENIED),
        ("cargo:rustc-env=RUSTC_WRAPPER=/tmp/x", ENV_DENIED),
        ("cargo:rustc-env=CRATECAGE_WRAPPER=/tmp/x", ENV_DENIED),
        # what would steer the wrapper's first use of a toolchain (shim.toolchain.first_use, shim.toolchain.capable) for the
        # crate's own compile: which toolchain, where rustup lives, whose capability stamps and policy count
        *((f"cargo:rustc-env={name}=/tmp/x", ENV_DENIED) for name in (
            "RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "RUSTC", "CARGO_HOME", "CRATECAGE_CACHE_DIR", "XDG_CACHE_HOME",
            "CRATECAGE_POLICY", "CRATECAGE_WORKSPACE_ROOT", "WASI_SYSROOT", "HOME")),
        ("cargo:rustc-env=GCONV_PATH=/tmp", ENV_DENIED),
        ("cargo:rustc-env=PYTHONPATH=/tmp", ENV_DENIED),
        ("cargo:rustc-env==x", ENV_DENIED),
        ("cargo:rustc-link-search=/usr/lib", "search path outside OUT_DIR and the package's own directory"),
        ("cargo:rustc-link-search=native=/tmp", "search path outside OUT_DIR"),
        (f"cargo:rustc-link-search={OUT}/../../../../../../tmp", "search path outside OUT_DIR"),
        (f"cargo:rustc-link-search={OUT}-sibling", "search path outside OUT_DIR"),
        ("cargo:rustc-link-search=out", "search path outside OUT_DIR"),
        (f"cargo:rustc-link-search=bogus={OUT}", "search path outside OUT_DIR"),  # rustc: path "bogus=..."
        (f"cargo:rustc-link-search=dependency={OUT}/a/./b", "`dependency=` makes rustc look for crates there"),
        (f"cargo::rustc-link-search=crate={OUT}", "`crate=` makes rustc look for crates there"),
        (f"cargo:rustc-link-search=framework={OUT}", "`framework=` search paths are for macOS frameworks"),
        ("cargo:rerun-if-env-changed=AWS_SECRET_ACCESS_KEY", "the build script may not see this variable"),
        ("cargo:rustc-link-lib=ssl", "library not found in OUT_DIR, the package or the system's library"),
        ("cargo::foo=bar", "cargo would reject this line: unknown key `foo`"),
        ("cargo:rustc-env=NOVALUE", "cargo would reject this line: `rustc-env` needs `NAME=VALUE`, found no `=`"),
    ],
)
def test_other_directives_are_dropped_and_reported(line: str, reason: str) -> None:
    kept, [(raw, why)] = run(line + "\n")
    assert (kept, raw) == ([], line) and why.startswith(reason), why


def test_a_grant_lets_a_directive_through_in_canonical_form() -> None:
    asked: list[tuple[str, str]] = []

    def grant(key: str, target: str) -> bool:
        asked.append((key, target))
        return True

    stdout = ("  cargo:rustc-env=LD_PRELOAD=/x.so\r\ncargo::rustc-link-arg=-Wl,-z,now\n"
              "cargo:rustc-link-lib=static:+whole-archive=ssl:renamed\ncargo:rustc-link-search=framework=/opt/f\n")
    kept, denied = run(stdout, grant=grant)
    assert kept == ["cargo:rustc-env=LD_PRELOAD=/x.so", "cargo::rustc-link-arg=-Wl,-z,now",
                    "cargo:rustc-link-lib=static:+whole-archive=ssl:renamed",
                    "cargo:rustc-link-search=framework=/opt/f"]
    assert asked == [("rustc-env", "LD_PRELOAD"), ("rustc-link-arg", "-Wl,-z,now"), ("rustc-link-lib", "ssl"),
                     ("rustc-link-search", "/opt/f")]
    assert denied == []


def test_a_grant_never_rescues_a_line_cargo_rejects() -> None:
    assert run("cargo:rustc-env=NOVALUE\n", grant=lambda k, t: True)[0] == []


def test_the_grant_item_names_exactly_the_denied_directive() -> None:
    (d,) = parse("  cargo::rustc-env=LD_PRELOAD=/tmp/evil.so\r")
    assert d.grant_item == "rustc-env=LD_PRELOAD"
    assert parse("cargo:rustc-link-search=native=/opt/x")[0].grant_item == "rustc-link-search=/opt/x"
    assert parse("cargo:rustc-link-lib=dylib=z")[0].grant_item == "rustc-link-lib=z"
    assert parse("cargo:rustc-link-arg=-s")[0].grant_item == "rustc-link-arg=-s"


def test_a_grant_from_a_policy_decides(tmp_path: Path) -> None:
    from shim.policy import load_file

    (tmp_path / "cratecage.toml").write_text(
        '[permissions.build.foo]\ndirectives = ["rustc-env=LD_LIBRARY_PATH", "rustc-link-search=/opt/*"]\n')
    grant = load_file(tmp_path / "cratecage.toml", where="top-level").resolve("build", "foo", "1.0.0")
    kept, denied = run("cargo:rustc-env=LD_LIBRARY_PATH=/opt\ncargo:rustc-env=LD_PRELOAD=/x\n"
                       "cargo:rustc-link-search=native=/opt/lib\ncargo:rustc-link-search=/opt/../etc\n",
                       grant=grant.allows_directive)
    assert kept == ["cargo:rustc-env=LD_LIBRARY_PATH=/opt", "cargo:rustc-link-search=native=/opt/lib"]
    assert [line for line, _ in denied] == ["cargo:rustc-env=LD_PRELOAD=/x", "cargo:rustc-link-search=/opt/../etc"]


def test_libraries_found_in_a_search_path_inside_out_dir_pass(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "lib").mkdir(parents=True)
    (out / "lib" / "libbundled.a").write_bytes(b"!<arch>\n")
    (out / "libshared.so").write_bytes(b"")
    (out / "exact.o").write_bytes(b"")
    stdout = (f"cargo:rustc-link-lib=static=bundled\ncargo:rustc-link-search=native={out}/lib\n"
              f"cargo:rustc-link-lib=bundled\ncargo:rustc-link-lib=dylib=bundled\ncargo:rustc-link-lib=shared\n"
              f"cargo:rustc-link-lib=static:+verbatim=exact.o\ncargo:rustc-link-lib=static=../lib/bundled\n"
              f"cargo:rustc-link-lib=framework=bundled\n")
    kept, denied = run(stdout, out_dir=str(out))
    assert kept == ["cargo:rustc-link-lib=static=bundled", f"cargo:rustc-link-search=native={out}/lib",
                    "cargo:rustc-link-lib=bundled"]
    assert [line for line, _ in denied] == [
        "cargo:rustc-link-lib=dylib=bundled",  # no libbundled.so
        "cargo:rustc-link-lib=shared",  # in OUT_DIR, but OUT_DIR itself is no search path here
        "cargo:rustc-link-lib=static:+verbatim=exact.o", "cargo:rustc-link-lib=static=../lib/bundled",
        "cargo:rustc-link-lib=framework=bundled"]


@pytest.mark.parametrize("value", ["bundled:evil", "static=bundled::evil.txt", "static=bundled:sub/../evil",
                                   "static:+verbatim=libbundled.a:x", "bundled:", "static=bundled::../../../etc/x"])
def test_a_library_renamed_on_the_way_to_the_linker_needs_a_grant(tmp_path: Path, value: str) -> None:
    """rustc gives the linker the new name (`-l:evil.txt`, `-lsub/../evil`): not the file that was checked."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "libbundled.a").write_bytes(b"!<arch>\n")
    kept, denied = run(f"cargo:rustc-link-search=native={out}\ncargo:rustc-link-lib={value}\n", out_dir=str(out))
    assert kept == [f"cargo:rustc-link-search=native={out}"]
    assert [(line, "renames the library" in why) for line, why in denied] == [(f"cargo:rustc-link-lib={value}", True)]


@pytest.mark.parametrize("name", ["-lc", "a b", "lib$x", "x;y", "\u00e9t\u00e9"])
def test_a_library_name_that_is_no_plain_name_needs_a_grant(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    kept, denied = run(f"cargo:rustc-link-search=native={out}\ncargo:rustc-link-lib=static={name}\n", out_dir=str(out))
    assert [line for line, _ in denied] == [f"cargo:rustc-link-lib=static={name}"]


def test_lines_that_are_not_directives_pass_unless_they_mention_cargo() -> None:
    stdout = b"building...\n  compiled 3 files\r\nsee cargo:rustc-link-arg docs\n\xff\xfe\ncargo:rustc-cfg=x\n"
    kept, denied = run(stdout)
    assert kept == ["building...", "  compiled 3 files\r", "cargo:rustc-cfg=x"] and denied == []


def test_everything_is_reported_not_just_the_first() -> None:
    kept, denied = run("cargo:rustc-link-arg=-a\ncargo:rustc-cfg=ok\ncargo:rustc-link-arg=-b\n")
    assert kept == ["cargo:rustc-cfg=ok"] and [line for line, _ in denied] == ["cargo:rustc-link-arg=-a",
                                                                               "cargo:rustc-link-arg=-b"]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_whatever_a_script_prints_only_canonical_or_inert_lines_come_out(stdout: bytes) -> None:
    kept, denied = filter(stdout, out_dir=OUT, grant_allows_directive=lambda k, t: False)
    for line in kept:
        assert "\n" not in line
        items = list(parse_lines(line + "\n"))
        if isinstance(items[0], Directive):
            assert items[0].canonical == line and RULES[items[0].key] is not None
        else:
            assert "cargo:" not in line
    assert all(reason for _, reason in denied)


# --- rustc-env: the class rule (shim.env_names) -------------------------------------------------------------

ENV_PASSES = ["TARGET", "HOST", "PROFILE", "OPT_LEVEL", "DEBUG", "NUM_JOBS", "BUILD_VERSION", "BUILD_TIMESTAMP",
              "VERGEN_BUILD_TIMESTAMP", "VERGEN_GIT_SHA", "VERGEN_GIT_DIRTY", "VERGEN_RUSTC_HOST_TRIPLE",
              "VERGEN_CARGO_OPT_LEVEL", "PROTOC_VERSION", "SOME_CRATE_FEATURES", "GIT_HASH", "git_commit_hash",
              "RING_CORE_PREFIX", "DEMO_PROFILE", "APP_DESCRIPTION", "TARGET_TRIPLE", "x", "PKG_SOURCE",
              "BUILD_PLATFORM", "BUILD_COMMIT", "CRATE_BUILD_PROFILE", "SOME_FEATURE_ENABLED"]
ENV_REFUSED = [
    # runtimes that load what a variable names (red team 6)
    "LOCALE_ARCHIVE", "LOCALE_ARCHIVE_2_27", "SDL_DYNAMIC_API", "ODBCINI", "ODBCSYSINI",
    "OMPI_MCA_plm_rsh_agent", "OMPI_MCA_orte_launch_agent", "VIMINIT", "EXINIT", "ELECTRON_RUN_AS_NODE",
    "ICU_DATA", "HWLOC_XMLFILE", "PMIX_MCA_ptl",
    # namespaces
    "LLVM_SYMBOLIZER_PATH", "llvm_symbolizer_path", "Llvm_Profile_File", "LLD_REPRODUCE", "lld_reproduce",
    "LLD_VERSION", "LD_PRELOAD", "ld_audit", "DYLD_INSERT_LIBRARIES", "RUSTC_BOOTSTRAP", "RUSTC_ICE",
    "RUSTC_VERSION", "CARGO_PKG_VERSION", "CRATECAGE_POLICY", "CLANG_MODULE_CACHE", "CCC_OVERRIDE_OPTIONS",
    "GCC_EXEC_PREFIX", "COLLECT_LTO_WRAPPER", "ASAN_SYMBOLIZER_PATH", "PYTHONWARNINGS", "PERL5OPT",
    "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "GIT_SSH_COMMAND", "GIT_CONFIG_KEY_0", "SSH_AUTH_SOCK",
    "DOCKER_HOST", "KUBECONFIG", "AWS_PROFILE", "LC_ALL", "LANGUAGE", "TERMINFO", "XDG_CONFIG_HOME",
    "OPENSSL_CONF", "SSL_CERT_FILE", "GLIBC_TUNABLES", "DEBUGINFOD_URLS", "NIX_LDFLAGS_AFTER", "PGPASSFILE",
    # shapes
    "MY_TOOL_PATH", "CLASSPATH", "FOO_CACHE_DIR", "TMPDIR", "GNUPGHOME", "WIDGET_HOME", "X_LOG_FILE",
    "APP_CONF", "KUBE_LIKE_CONFIG", "XZ_OPT", "FOO_OPTS", "CFLAGS", "LDFLAGS", "http_proxy", "HTTPS_PROXY",
    "no_proxy", "GOPROXY", "REQUESTS_CA_BUNDLE", "BAR_PLUGINS", "THING_PROGRAM", "TOOL_EXE", "RUN_CMD",
    "HOOK_COMMAND", "MY_SHELL", "DEPENDENCIES_OUTPUT", "GOROOT", "GOTOOLCHAIN", "DATABASE_URL",
    "SSLKEYLOGFILE", "SOME_PRELOAD", "X_REPRODUCE", "AUDIT_LIB", "_PYTHON_SYSCONFIGDATA_NAME", "_LINK_",
    # single names
    "HOME", "SHELL", "EDITOR", "PAGER", "TZ", "LANG", "CC", "CXX", "AR", "MAKE", "LINK", "INCLUDE", "ENV",
    "IFS", "PATH", "path",
    # what programs `cargo run`/`cargo test` start read as files to load: driver loaders, pagers, history
    "VK_ICD_FILENAMES", "vk_icd_filenames", "OCL_ICD_FILENAMES", "OCL_ICD_VENDORS", "VK_INSTANCE_LAYERS",
    "VK_LOADER_LAYERS_ENABLE", "VK_DRIVER_FILES", "__EGL_VENDOR_LIBRARY_FILENAMES", "EGL_PLATFORM",
    "MESA_LOADER_DRIVER_OVERRIDE", "LIBVA_DRIVER_NAME", "GTK_MODULES", "GST_PLUGIN_SYSTEM_PATH",
    "GSETTINGS_BACKEND", "QT_QPA_PLATFORM", "CUDA_VISIBLE_DEVICES", "HISTFILE", "histfile", "HISTSIZE",
    "MYSQL_HISTFILE", "SQLITE_HISTORY", "PSQLRC", "LESSKEY", "LESSHISTFILE", "MAGIC", "MANPAGER", "MANOPT",
    "Widget_Pager", "SYSTEMD_PAGER", "APP_HISTFILE", "X_FILENAMES", "WIDGET_ICD", "FOO_LAYERS", "MY_LIBRARY",
    "ZLIBRARY", "FOO_SO", "GPU_DRIVERS", "AUDIO_BACKEND", "NET_LOADER", "REPL_STARTUP", "FOO_MODULES",
    # not identifiers
    "", "A=B", "BASH_FUNC_f%%", "1ABC", "A B", "A-B", "Ä",
]


@pytest.mark.parametrize("name", ENV_PASSES)
def test_rustc_env_of_a_name_that_describes_the_build_passes(name: str) -> None:
    assert directives.tool_variable(name) == ""
    assert run(f"cargo:rustc-env={name}=v\n") == ([f"cargo:rustc-env={name}=v"], [])


@pytest.mark.parametrize("name", ENV_REFUSED)
def test_rustc_env_of_a_name_tools_read_needs_a_grant(name: str) -> None:
    reason = directives.tool_variable(name)
    assert reason
    if "=" in name:
        return  # cargo splits at the first "=": the name is "A", a name that passes
    line = f"cargo:rustc-env={name}=/tmp/x"
    assert run(line + "\n") == ([], [(line, ENV_DENIED + reason)])
    assert run(line + "\n", grant=lambda k, t: (k, t) == ("rustc-env", name)) == ([line], [])


def test_the_loader_subset_is_inside_the_class() -> None:
    from shim import env_names

    for name in [*env_names.LOADER_ENV_NAMES, *(p + "X" for p in env_names.LOADER_ENV_PREFIXES)]:
        assert directives.loader_variable(name) and directives.tool_variable(name), name


# The crate's own namespace (`CRUNCHY_*` of crunchy): the shape rules 3 and 4 give way, nothing else does.
OWN_NAMESPACE_PASSES = [
    ("crunchy", "CRUNCHY_LIB_SUFFIX"), ("my-crate", "MY_CRATE_OUT_PATH"), ("my_crate", "my_crate_data_dir"),
    ("widget", "WIDGET_CONFIG_FILE"), ("tmp", "TMP_BUILD_DIR"), ("http", "HTTP_VERSION_FILE"),
    ("library", "LIBRARY_DATA_PATH"), ("c", "C_SOURCES_DIR"),
]
OWN_NAMESPACE_REFUSED = [
    # rule 2: a package named after a tool gains none of its namespace
    ("ld", "LD_PRELOAD"), ("ld", "LD_LIBRARY_PATH"), ("ld", "LD_SO_DIR"), ("python", "PYTHONPATH"),
    ("python", "PYTHON_PATH"), ("git", "GIT_SSH_COMMAND"), ("git", "GIT_CONFIG_GLOBAL"), ("cargo", "CARGO_HOME"),
    ("rustc", "RUSTC_WRAPPER"), ("llvm", "LLVM_SYMBOLIZER_PATH"), ("lld", "LLD_REPRODUCE"), ("gcc", "GCC_EXEC_PREFIX"),
    ("sccache", "SCCACHE_DIR"), ("openssl", "OPENSSL_CONF"), ("node", "NODE_OPTIONS"), ("pkg-config", "PKG_CONFIG_PATH"),
    # rule 5, and names loaders read
    ("tmp", "TMPDIR"), ("tmp", "TMP"), ("library", "LIBRARY_PATH"), ("compiler", "COMPILER_PATH"),
    ("c", "C_INCLUDE_PATH"), ("cplus", "CPLUS_INCLUDE_PATH"), ("sunpro", "SUNPRO_DEPENDENCIES"),
    # rule 1, and the bare package name
    ("crunchy", "CRUNCHY_LIB-SUFFIX"), ("_x", "_X_PATH"),
    # fragments read after any prefix
    ("http", "HTTP_PROXY"), ("https", "https_proxy"), ("all", "ALL_PROXY"), ("socks", "SOCKS_PROXY"),
    ("je", "JE_MALLOC_CONF"), ("sudo", "SUDO_ASKPASS"), ("dependencies", "DEPENDENCIES_OUTPUT"),
    ("foo", "FOO_SYMBOLIZER_PATH"), ("foo", "FOO_PRELOAD"), ("foo", "FOO_AUDIT_LIB"),
    # the namespace is the package's only
    ("crunchy", "CRUNCH_LIB_SUFFIX"), ("my-crate", "MY_LIB_PATH"), ("mime_guess", "MIME_TYPES_GENERATED_PATH"),
]


@pytest.mark.parametrize(("package", "name"), OWN_NAMESPACE_PASSES)
def test_rustc_env_in_the_crates_own_namespace_passes_whatever_its_words(package: str, name: str) -> None:
    assert directives.tool_variable(name)  # refused for any other crate
    assert directives.tool_variable(name, package) == ""
    line = f"cargo:rustc-env={name}=v"
    assert filter(line + "\n", out_dir=OUT, grant_allows_directive=nothing_granted, package=package) == ([line], [])


@pytest.mark.parametrize(("package", "name"), OWN_NAMESPACE_REFUSED)
def test_rustc_env_in_a_namespace_tools_read_stays_refused_whatever_the_package_is_called(package: str,
                                                                                          name: str) -> None:
    reason = directives.tool_variable(name, package)
    assert reason
    line = f"cargo:rustc-env={name}=/tmp/x"
    assert filter(line + "\n", out_dir=OUT, grant_allows_directive=nothing_granted, package=package)[0] == []


# --- rerun-if-env-changed -----------------------------------------------------------------------------------

def test_rerun_if_env_changed_passes_only_for_variables_the_script_may_see() -> None:
    visible = {"PROFILE", "CARGO_FEATURE_X", "GRANTED"}.__contains__
    stdout = ("cargo:rerun-if-env-changed=PROFILE\ncargo::rerun-if-env-changed=GRANTED\n"
              "cargo:rerun-if-env-changed=CARGO_FEATURE_X\ncargo:rerun-if-env-changed=SECRET_TOKEN\n"
              " cargo:rerun-if-env-changed=granted\r\n")
    kept, denied = run(stdout, env_visible=visible)
    assert kept == ["cargo:rerun-if-env-changed=PROFILE", "cargo::rerun-if-env-changed=GRANTED",
                    "cargo:rerun-if-env-changed=CARGO_FEATURE_X"]
    assert [(raw.strip(), reason.split(",")[0]) for raw, reason in denied] == [
        ("cargo:rerun-if-env-changed=SECRET_TOKEN", "the build script may not see this variable"),
        ("cargo:rerun-if-env-changed=granted", "the build script may not see this variable")]
    [(d, _)] = filter("cargo:rerun-if-env-changed=S\n", out_dir=OUT, grant_allows_directive=nothing_granted)[1]
    assert (RULES[d.key].capability, RULES[d.key].fatal, d.target) == ("env-access", False, "S")


# --- enforce.filter_stdout: what the runner reports ---------------------------------------------------------

def _ctx(tmp_path: Path, host_env: dict[str, str]):  # noqa: ANN202 - a RunContext
    from shim.host.context import RunContext

    return RunContext(crate="c", version="1.0.0", package_dir=str(tmp_path), out_dir=str(tmp_path / "out"),
                      tmp_dir=str(tmp_path), env={}, host_env=host_env, rustc="rustc", sysroot="/")


def test_rerun_of_a_hidden_variable_is_dropped_and_reported_with_its_env_access_entry(tmp_path: Path) -> None:
    from shim.policy.model import Grant
    from shim.sandbox import enforce

    ctx = _ctx(tmp_path, {"SECRET": "s", "GRANTED": "g", "PROFILE": "debug"})
    grant = Grant(kind="build", crate="c", version="1.0.0", permits={"env-access.vars": ("GRANTED",)})
    stdout = (b"cargo:rerun-if-env-changed=SECRET\ncargo:rerun-if-env-changed=GRANTED\n"
              b"cargo:rerun-if-env-changed=PROFILE\ncargo:rerun-if-env-changed=UNSET_ON_HOST\n")
    assert filter_stdout(stdout, ctx, grant) == (b"cargo:rerun-if-env-changed=GRANTED\n"
                                                          b"cargo:rerun-if-env-changed=PROFILE\n")
    [denial] = ctx.denials
    assert (denial.capability, denial.target, denial.fatal) == ("env-access", "SECRET", False)
    assert 'env-access = { action = "permit", vars = ["SECRET"] }' in denial.fix
    assert denial.render("c", "1.0.0").startswith("cratecage: build script of c 1.0.0: env-access not granted: "
                                                  "SECRET: the build script may not see this variable")


def test_warn_mode_passes_a_hidden_rerun_on_and_marks_it_permitted(tmp_path: Path) -> None:
    from shim.policy.model import Grant
    from shim.sandbox import enforce

    ctx = _ctx(tmp_path, {"SECRET": "s"})
    grant = Grant(kind="build", crate="c", version="1.0.0", mode="warn")
    out = filter_stdout(b"cargo:rerun-if-env-changed=SECRET\ncargo:rustc-env=LLD_REPRODUCE=/x\n", ctx, grant)
    assert out == b"cargo:rerun-if-env-changed=SECRET\ncargo:rustc-env=LLD_REPRODUCE=/x\n"
    assert [(d.capability, d.permitted, d.fatal) for d in ctx.denials] == [("env-access", True, False),
                                                                           ("directives", True, True)]


def test_a_tool_variable_is_a_fatal_directives_denial_with_its_entry(tmp_path: Path) -> None:
    from shim.sandbox import enforce

    ctx = _ctx(tmp_path, {})
    assert filter_stdout(b"cargo:rustc-env=LLVM_SYMBOLIZER_PATH=/x\n", ctx, None) == b""
    [denial] = ctx.denials
    assert (denial.capability, denial.fatal) == ("directives", True)
    assert '"rustc-env=LLVM_SYMBOLIZER_PATH"' in denial.fix


# --- search paths in the package itself (the windows_* crates) ---------------------------------------------

def package_with_lib(tmp_path: Path) -> tuple[Path, Path]:
    """(package dir, OUT_DIR in a target dir inside it) with `lib/libshipped.a`, an empty archive."""
    package = tmp_path / "windows_x86_64_gnu-0.52.6"
    (package / "lib").mkdir(parents=True)
    (package / "lib" / "libshipped.a").write_bytes(b"!<arch>\n")
    out = package / "target" / "debug" / "build" / "windows_x86_64_gnu-1234" / "out"
    out.mkdir(parents=True)
    return package, out


@pytest.mark.parametrize("kind", ["native=", "", "all="])
def test_a_search_path_in_the_packages_own_directory_passes_as_native(tmp_path: Path, kind: str) -> None:
    package, out = package_with_lib(tmp_path)
    kept, denied = run(f"cargo:rustc-link-search={kind}{package}/lib\ncargo:rustc-link-lib=static=shipped\n",
                       out_dir=str(out), package_dir=str(package), hidden=(str(package / "target"),))
    assert (kept, denied) == ([f"cargo:rustc-link-search=native={package}/lib", "cargo:rustc-link-lib=static=shipped"],
                              [])


def test_search_paths_elsewhere_than_the_package_itself_are_refused(tmp_path: Path) -> None:
    package, out = package_with_lib(tmp_path)
    other = tmp_path / "windows_i686_gnu-0.52.6" / "lib"
    other.mkdir(parents=True)
    (package / "outside").symlink_to(other.parent)  # a link the package ships, leading out of it
    (package / "lib" / "inner").symlink_to(package / "lib")  # even one that stays inside
    sibling = out.parent.parent / "other-crate-5678" / "out"  # another crate's OUT_DIR, in the package's target
    sibling.mkdir(parents=True)
    paths = [f"native={other}", f"native={package}/../{other.parent.name}/lib", f"native={package}/outside/lib",
             f"native={package}/lib/inner", f"native={sibling}", f"native={package}-evil/lib", f"crate={package}/lib",
             "native=lib"]
    lines = [f"cargo:rustc-link-search={p}" for p in paths]
    kept, denied = run("\n".join(lines) + "\n", out_dir=str(out), package_dir=str(package),
                       hidden=(str(package / "target"),))
    assert kept == [] and [line for line, _ in denied] == lines
    reasons = [why for _, why in denied]
    assert "symbolic link" in reasons[2] and "symbolic link" in reasons[3] and "target directory" in reasons[4]
    assert "look for crates" in reasons[6]
    # The twin: the same package directory, reached as it is, passes.
    assert run(f"cargo:rustc-link-search=native={package}/lib\n", out_dir=str(out), package_dir=str(package),
               hidden=(str(package / "target"),))[1] == []


def test_a_target_directory_spelled_otherwise_is_still_refused(tmp_path: Path) -> None:
    """A case-insensitive file system (a WSL drive) or a bind mount gives the package's target directory
    another spelling, which no text comparison catches: the directory's identity does (red team, issue 11).
    Here a bind mount in a private mount namespace (`unshare -m`), where one can be made."""
    import shutil
    import subprocess
    import sys

    package, out = package_with_lib(tmp_path)
    (package / "alias").mkdir()
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from shim.build.directives import filter\n"
              "k, d = filter(sys.argv[2], out_dir=sys.argv[3], grant_allows_directive=lambda k, t: False,"
              " package_dir=sys.argv[4], hidden=(sys.argv[5],)); print(d[0][1] if d else 'kept')\n")
    root = str(Path(directives.__file__).resolve().parents[2])
    line = f"cargo:rustc-link-search=native={package}/alias/debug/build/windows_x86_64_gnu-1234/out\n"
    unshare = shutil.which("unshare")
    mount = f"mount --bind {package / 'target'} {package / 'alias'}"
    proc = subprocess.run([unshare or "unshare", "-m", "sh", "-c", f'{mount} && exec "$0" "$@"', sys.executable, "-c",
                           script, root, line, str(out), str(package), str(package / "target")],
                          capture_output=True, text=True) if unshare else None
    if proc is None or proc.returncode != 0:
        pytest.skip(f"no private bind mount here ({proc.stderr.strip() if proc else 'no unshare'})")
    assert proc.stdout.startswith("search path in a cargo target directory inside the package, spelled ")
    assert run(line, out_dir=str(out), package_dir=str(package), hidden=(str(package / "target"),))[1] == []  # unmounted


def test_a_package_search_path_whose_files_would_steer_the_linker_is_refused(tmp_path: Path) -> None:
    package, out = package_with_lib(tmp_path)
    (package / "lib" / "libc.so").write_text("INPUT(/etc/passwd)\n")  # a linker script a package could ship
    kept, [(line, why)] = run(f"cargo:rustc-link-search=native={package}/lib\n", out_dir=str(out),
                              package_dir=str(package))
    assert kept == [] and "libc.so" in why and "linker script" in why


def test_a_library_file_in_the_package_that_links_out_of_it_is_refused(tmp_path: Path) -> None:
    """A package (a git or path dependency) may ship `lib/libx.a -> elsewhere`: the bytes checked now are then
    a file outside the package (another crate's OUT_DIR, rewritten before the link), as a linked lib/ would be."""
    package, out = package_with_lib(tmp_path)
    sibling = out.parent.parent / "other-crate-5678" / "out"
    sibling.mkdir(parents=True)
    (sibling / "libother.a").write_bytes(b"!<arch>\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "libaway.a").write_bytes(b"!<arch>\n")
    search = f"cargo:rustc-link-search=native={package}/lib\n"
    for name, target in (("libother.a", sibling / "libother.a"), ("libaway.a", elsewhere / "libaway.a")):
        (package / "lib" / name).symlink_to(target)
        kept, [(_, why)] = run(search, out_dir=str(out), package_dir=str(package), hidden=(str(package / "target"),))
        assert kept == [] and f"{name} there, which is a symbolic link out of the package" in why
        (package / "lib" / name).unlink()
    # The twin: a link that stays in the package (a versioned name) passes.
    (package / "lib" / "libversioned.a").symlink_to("libshipped.a")
    assert run(search, out_dir=str(out), package_dir=str(package), hidden=(str(package / "target"),))[1] == []


def windows_imports(path: Path) -> None:
    """An archive of one Windows import object, as windows_x86_64_gnu ships them (tests/confine/test_linkinput.py)."""
    from test_linkinput import _archive, coff_object

    path.write_bytes(_archive(("m.o/", coff_object(b".text", b".idata$5"))))


@pytest.mark.parametrize("target, passes", [("x86_64-unknown-linux-gnu", False), ("", False),
                                            ("x86_64-pc-windows-gnu", True)])
def test_windows_import_archives_in_out_dir_pass_only_for_a_windows_target(tmp_path: Path, target: str,
                                                                           passes: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    windows_imports(out / "libimp.a")
    lines = [f"cargo:rustc-link-search=native={out}", "cargo:rustc-link-lib=static=imp"]
    kept, denied = run("\n".join(lines) + "\n", out_dir=str(out), target=target)
    if passes:
        assert (kept, denied) == (lines, [])
    else:
        assert kept == [] and "which is an archive with a member that is a Windows import object" in denied[0][1]


@pytest.mark.parametrize("target, passes", [("x86_64-unknown-linux-gnu", False), ("x86_64-pc-windows-msvc", True)])
def test_a_packages_windows_import_archive_is_on_the_search_path_but_linked_only_for_windows(
        tmp_path: Path, target: str, passes: bool) -> None:
    """windows_x86_64_gnu prints its lib/ on every target (it passes); `-l` of its archive elsewhere than on
    Windows would make GNU ld crash, and is refused."""
    package, out = package_with_lib(tmp_path)
    windows_imports(package / "lib" / "libwindows.0.52.0.a")
    search, lib = f"cargo:rustc-link-search=native={package}/lib", "cargo:rustc-link-lib=windows.0.52.0"
    kept, denied = run(f"{search}\n{lib}\n", out_dir=str(out), package_dir=str(package), target=target)
    if passes:
        assert (kept, denied) == ([search, lib], [])
    else:
        assert kept == [search] and denied == [(lib, "libwindows.0.52.0.a holds a Windows import object, which only "
                                                     "a Windows target links (GNU ld crashes on one elsewhere)")]


# --- plain system libraries ---------------------------------------------------------------------------------

def test_libraries_of_the_machines_own_library_directories_pass() -> None:
    """zlib1g-dev (make's c-tools) and glibc's dl, m and pthread, found where the linker looks by default."""
    libs = ["cargo:rustc-link-lib=z", "cargo:rustc-link-lib=dylib=dl", "cargo:rustc-link-lib=m",
            "cargo:rustc-link-lib=static=z", "cargo:rustc-link-lib=pthread"]
    assert run("\n".join(libs) + "\n", system_dirs=None) == (libs, [])


def test_libraries_only_in_gccs_versioned_directory_pass() -> None:
    """gcc's own libraries (`gcc`, `gcc_eh`, `stdc++`, `atomic`) live in `/usr/lib/gcc/<triple>/<N>`, which the
    driver hands the linker on every link: root's there, so a `-l` of one passes (red team, issue 11: held);
    without that directory the ones found only there would be refused."""
    from pathlib import Path as P

    from shim.confine import syslibs

    gcc = [d for d in syslibs.default_dirs() if d.startswith("/usr/lib/gcc/")]
    names = [n for n in ("gcc", "gcc_eh", "stdc++", "atomic") if any((P(d) / f"lib{n}.a").exists() for d in gcc)]
    if "gcc_eh" not in names:
        pytest.skip("no gcc library directory here")
    libs = [f"cargo:rustc-link-lib={n}" for n in names]
    assert run("\n".join(libs) + "\n", system_dirs=None) == (libs, [])
    others = tuple(d for d in syslibs.default_dirs() if d not in gcc)
    assert run("cargo:rustc-link-lib=gcc_eh\n", system_dirs=others)[0] == []  # found only in gcc's directory


def test_a_system_library_passes_only_when_it_is_roots_through_and_through(root_dir: Path) -> None:
    (root_dir / "libsys.a").write_bytes(b"")
    assert run("cargo:rustc-link-lib=sys\n", system_dirs=(str(root_dir),)) == (["cargo:rustc-link-lib=sys"], [])
    not_roots(root_dir / "libsys.a")
    (_, why), = run("cargo:rustc-link-lib=sys\n", system_dirs=(str(root_dir),))[1]
    assert "not owned by root" in why
    (root_dir / "libsys.a").unlink()
    (root_dir / "users").mkdir()
    (root_dir / "users" / "libsys.so").write_bytes(b"")
    not_roots(root_dir / "users")
    (root_dir / "libsys.so").symlink_to(root_dir / "users" / "libsys.so")  # root's link, into a user's directory
    (_, why), = run("cargo:rustc-link-lib=sys\n", system_dirs=(str(root_dir),))[1]
    assert "not owned by root" in why


def test_a_system_library_shadowed_by_a_search_path_the_script_printed_is_refused(tmp_path: Path,
                                                                                   root_dir: Path) -> None:
    (root_dir / "libsys.so").write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    (out / "libsys.so").write_text("INPUT(/etc/passwd)\n")
    kept, denied = run(f"cargo:rustc-link-search=native={out}\ncargo:rustc-link-lib=sys\n", out_dir=str(out),
                       system_dirs=(str(root_dir),))
    assert kept == [] and "holds a library of this name" in denied[1][1]
    assert run("cargo:rustc-link-lib=sys\n", out_dir=str(out), system_dirs=(str(root_dir),))[1] == []  # the twin


@pytest.mark.parametrize("value", ["static:+verbatim=libsys.a", "sys:other", "framework=sys", "../sys", "sys-missing"])
def test_a_system_library_named_other_than_plainly_or_missing_is_refused(root_dir: Path, value: str) -> None:
    (root_dir / "libsys.a").write_bytes(b"")
    assert run(f"cargo:rustc-link-lib={value}\n", system_dirs=(str(root_dir),))[0] == []


@pytest.mark.parametrize("line, kept", [
    ("cargo:rustc-link-arg=-pthread", True),  # jemalloc, mimalloc
    ("cargo:rustc-link-arg-bins=-Wl,--as-needed", False),
    ("cargo:rustc-link-arg-bin=tool=-pthread", True),
    ("cargo:rustc-link-arg=-pthread -Wl,-T,/etc/passwd", False),  # one argument to the linker: not the plain one
    ("cargo:rustc-link-arg=-Wl,--as-needed,-T,/etc/passwd", False),
    ("cargo:rustc-link-arg-bin=-pthread=-Wl,-T,x", False),
    ("cargo:rustc-link-arg=-fuse-ld=/tmp/ld", False),
    ("cargo:rustc-link-arg=-pthreads", False),
    # red team 2: other spellings of the plain ones are not them
    ("cargo:rustc-link-arg= -pthread", False), ("cargo:rustc-link-arg=\u2010pthread", False),
    ("cargo:rustc-link-arg=-Wl,--as-needed,", False), ("cargo:rustc-link-arg=-Wl,--as-needed,--no-as-needed", False),
    ("cargo:rustc-link-arg=-Wl,--AS-NEEDED", False), ("cargo:rustc-link-arg=-Xlinker --as-needed", False),
    ("cargo::rustc-link-arg-cdylib=-Wl,--no-as-needed", False), ("cargo::rustc-link-arg-cdylib=-pthread", True),
])
def test_only_plain_link_args_pass_without_a_grant(line: str, kept: bool) -> None:
    passed, denied = run(line + "\n")
    assert (passed == [line], bool(denied)) == (kept, not kept)
