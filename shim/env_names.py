"""Which variables a build script may set with `cargo:rustc-env=NAME=VALUE` without a grant: a class rule.

Why this exists: cargo puts every `rustc-env` pair into the environment of the package's own rustc call,
that is of cratecage itself (a Python program), an inner wrapper (sccache, ...), rustc, LLVM inside it, the
linker driver (`cc`), collect2, the linker (ld, lld, mold), the LTO plugin and anything those start; and of
`cargo run`/`cargo test` of the package. Tools read many variables that make them run a program
(LLVM_SYMBOLIZER_PATH: LLVM runs it when it crashes; MAKE: gcc's lto-wrapper runs it), load code
(LD_PRELOAD, PYTHONPATH, GCONV_PATH), read or write a file anywhere (LLD_REPRODUCE writes a tar of every
link input; LLVM_PROFILE_FILE, DEPENDENCIES_OUTPUT, GMON_OUT_PREFIX write; LANG=/abs loads a locale,
TZ=:/abs reads a file), change their command line (CCC_OVERRIDE_OPTIONS, _LINK_, NODE_OPTIONS) or talk
to the network (proxies, DEBUGINFOD_URLS). A list of the names we know of is always one name short, so
the rule refuses *the shapes such names have*, and a name passes only when it fits none of them.

A name needs a grant (`directives = ["rustc-env=NAME"]`) when, compared upper-cased (Windows and curl's
`http_proxy` ignore case):

  1. it is not a plain identifier `[A-Za-z_][A-Za-z0-9_]*` (`BASH_FUNC_f%%`, `=C:`, empty), or it starts
     with `_` (tools' private settings: `_JAVA_OPTIONS`, `_PYTHON_SYSCONFIGDATA_NAME` imports a module);
  2. it is in a namespace tools read (`NAMESPACES`: a prefix such as `LLVM_`, `RUST`, `PYTHON`, `GIT_`),
     unless it is one of the few `VALUE_NAMES` that crates print and no tool of that namespace reads
     (`GIT_HASH`: git reads no such variable, vergen-style crates print it);
  3. it has several `_`-separated words and one is a word tool settings are made of (`WORDS`: FILE, DIR,
     HOME, CMD, OUTPUT, ROOT, URL, TOKEN, ...), as in `FOO_CACHE_DIR`, `MY_TOOL_CMD`, `DATABASE_URL`;
  4. it ends in such a word glued on (`ENDINGS`: TMPDIR, GNUPGHOME, RUBYOPT, GOROOT, KUBECONFIG), or
     contains a fragment that only tool settings have (`PARTS`: PATH, PRELOAD, REPRODUCE, AUDIT, PROXY,
     FLAGS, CONFIG, MALLOC, SANITIZER, ...);
  5. it is a well-known single name (`NAMES`: HOME, SHELL, EDITOR, TZ, LANG, CC, MAKE, LINK, ...).

The namespaces and words also cover what the *programs* `cargo run`/`cargo test` start read as files to
load: driver loaders (VK_ICD_FILENAMES, OCL_ICD_VENDORS, `*_LAYERS`, `*_LIBRARY`, `*_SO`), pagers
(MANPAGER, `*PAGER`) and history or start-up files (HISTFILE, `*_HISTORY`, `*STARTUP`).

What passes: names that describe the build rather than configure a tool, e.g. TARGET, HOST, PROFILE,
OPT_LEVEL, BUILD_VERSION, BUILD_TIMESTAMP, VERGEN_BUILD_TIMESTAMP, VERGEN_RUSTC_HOST_TRIPLE, PROTOC_VERSION,
MY_CRATE_FEATURES, GIT_HASH, RING_CORE_PREFIX (ring's symbol prefix: no tool reads a `*_PREFIX` outside the
namespaces above, which is why PREFIX is no word here). A name the rule refuses by accident costs one line of policy; a name it
lets through by accident costs the user's machine.

The crate's own namespace: a name that starts with the package's name upper-cased, `-` as `_`, and then
`_` (`CRUNCHY_LIB_SUFFIX` from crunchy, `MY_CRATE_OUT_PATH` from my-crate) is what the crate calls its own
value, so rules 3 and 4 (the shapes) do not apply to it. Everything else still does: rules 1, 2 and 5
(a package named `ld`, `python`, `git` or `cargo` gains no `LD_*`, `PYTHON*`, `GIT_*`, `CARGO*`, one named
`tmp` no TMPDIR), no name loaders read (`LOADER_ENV_*`: a package named `library` gains no LIBRARY_PATH),
and no fragment that tools read after *any* prefix (`ANY_PREFIX_PARTS`: libcurl and reqwest read
`<scheme>_PROXY` for every scheme, so a package named `http` gains no HTTP_PROXY; jemalloc reads
`<prefix>MALLOC_CONF`; sudo SUDO_ASKPASS). The prefix is the package's, which any crate may choose, so the
relaxation holds only because every reader of a `<TOOL>_*` name in the chain that sees `rustc-env` (cratecage,
an inner wrapper, rustc, the linker and what they start) is a namespace of rule 2 or a name of rule 5.

`LOADER_ENV_PREFIXES`/`LOADER_ENV_NAMES` are the narrower list of what changes how a program *loads*
code or finds tools; shim.host.spawn strips those from a granted child's environment.
"""

from __future__ import annotations

from typing import Final

# Rule 2: namespaces, by prefix, each with who reads it.
NAMESPACES: Final[dict[str, str]] = {
    # the dynamic loader, the C library and its add-ons
    "LD_": "the dynamic loader", "DYLD_": "the dynamic loader", "GLIBC_": "glibc", "GCONV_": "glibc",
    "MALLOC_": "the allocator", "LIBC_": "glibc", "SEGFAULT_": "libSegFault", "MEMUSAGE_": "glibc",
    "PCPROFILE_": "glibc", "GMON_": "gprof", "GCOV_": "gcov", "LC_": "the locale", "LANG": "the locale",
    "TERM": "terminal libraries", "XDG_": "every desktop program", "DBUS_": "D-Bus",
    # the Rust toolchain, cargo and this wrapper
    "RUST": "rustc, rustdoc and rustup", "CARGO": "cargo", "CRATECAGE": "cratecage",
    # LLVM, the linkers, the C toolchain and compiler wrappers
    "LLVM_": "LLVM", "LLD_": "lld", "CLANG": "clang", "CCC_": "clang", "CC_": "the C compiler",
    "CXX_": "the C++ compiler", "AR_": "archivers", "GCC_": "gcc", "COLLECT_": "gcc's collect2",
    "LTO_": "the LTO plugin", "MOLD_": "mold", "ZIG_": "zig cc", "NIX_": "Nix's compiler wrappers",
    "SCCACHE_": "sccache", "CCACHE_": "ccache", "DISTCC_": "distcc", "ICECC_": "icecc",
    "PKG_CONFIG": "pkg-config", "DEBUGINFOD_": "debuginfod clients", "WASMTIME_": "wasmtime",
    "MACOSX_": "Apple's toolchain", "IPHONEOS_": "Apple's toolchain", "SDKROOT": "Apple's toolchain",
    "DEVELOPER_": "Apple's toolchain", "XCODE": "Apple's toolchain", "VSCMD": "Visual Studio's tools",
    "VSINSTALL": "Visual Studio's tools", "VCINSTALL": "Visual Studio's tools", "VCTOOLS": "Visual Studio's tools",
    "VCPKG": "vcpkg", "WINDOWSSDK": "Visual Studio's tools", "UCRT": "Visual Studio's tools",
    # sanitizer and instrumentation runtimes (they read files and run symbolizers named here)
    "ASAN_": "sanitizers", "UBSAN_": "sanitizers", "LSAN_": "sanitizers", "MSAN_": "sanitizers",
    "TSAN_": "sanitizers", "HWASAN_": "sanitizers", "DFSAN_": "sanitizers", "AFL_": "AFL",
    "VALGRIND": "valgrind", "COVERAGE_": "coverage.py", "COV_CORE_": "pytest-cov",
    # interpreters and language toolchains (cratecage itself is Python)
    "PYTHON": "Python", "PY": "Python tools", "PIP_": "pip", "VIRTUAL_ENV": "Python", "CONDA": "conda",
    "UV_": "uv", "POETRY_": "poetry", "PERL": "Perl", "RUBY": "Ruby", "GEM_": "RubyGems",
    "BUNDLE_": "Bundler", "NODE_": "Node.js", "NPM_": "npm", "YARN_": "yarn", "JAVA": "Java",
    "_JAVA_": "Java", "JDK_": "Java", "DOTNET_": "dotnet", "COMPLUS_": "dotnet", "CORECLR_": "dotnet",
    "LUA_": "Lua", "TCL": "Tcl", "PHP": "PHP", "CGO_": "Go", "GOOGLE_": "Google's SDKs",
    # shells and the programs they start
    "BASH": "bash", "ZSH": "zsh", "ZDOTDIR": "zsh", "KSH": "ksh", "FISH_": "fish",
    # version control, credentials, containers and clouds
    "GIT_": "git", "SSH_": "ssh", "GPG": "GnuPG", "GNUPG": "GnuPG", "PINENTRY": "GnuPG",
    "KRB5": "Kerberos", "OPENSSL_": "OpenSSL", "SSL_": "TLS libraries", "NSS_": "NSS", "CURL_": "curl",
    "WGET": "wget", "DOCKER_": "docker", "KUBE": "kubectl", "HELM_": "helm", "PODMAN_": "podman",
    "CONTAINERS_": "podman", "BUILDAH_": "buildah", "AWS_": "AWS tools", "AZURE_": "Azure tools",
    "GCLOUD_": "gcloud", "CLOUDSDK_": "gcloud", "VAULT_": "vault", "GITHUB_": "GitHub Actions",
    "GH_": "gh", "GITLAB_": "GitLab", "ACTIONS_": "GitHub Actions", "RUNNER_": "CI runners",
    "PG": "libpq", "SQLX_": "sqlx's macros", "QEMU_": "qemu (a cargo runner)", "WINE": "wine",
    "EMCC": "emscripten", "EMSDK": "emscripten", "ANDROID_": "the Android NDK", "NDK_": "the Android NDK",
    "PYTEST_": "pytest",
    # loaders of graphics, compute, media and desktop drivers: they read files naming libraries to load
    # (VK_ICD_FILENAMES, OCL_ICD_VENDORS, __EGL_VENDOR_LIBRARY_FILENAMES, LIBGL_DRIVERS_PATH, GTK_MODULES)
    "VK_": "the Vulkan loader", "OCL_": "the OpenCL ICD loader", "OPENCL_": "OpenCL loaders",
    "EGL_": "the EGL loader", "GLX_": "the GLX loader", "MESA_": "Mesa", "LIBGL_": "Mesa", "GBM_": "Mesa",
    "DRI_": "Mesa", "VDPAU_": "VDPAU", "LIBVA_": "VA-API", "CUDA_": "CUDA", "GST_": "GStreamer",
    "GTK_": "GTK", "GDK_": "GTK", "GIO_": "GLib", "GI_": "GObject introspection", "GSETTINGS_": "GLib",
    "QT_": "Qt", "ALSA_": "ALSA", "PULSE_": "PulseAudio", "PIPEWIRE_": "PipeWire", "SPA_": "PipeWire",
    "JACK_": "JACK", "SANE_": "SANE", "MOZ_": "Mozilla's libraries",
    # interactive programs `cargo run` may start: their history, pager and start-up files
    "HIST": "shells (history files)", "LESS": "less", "SQLITE_": "sqlite3",
    "MYSQL": "the MySQL client",
    "PSQL": "psql", "INPUTRC": "readline",
    # runtimes that load libraries, data or agents named in a variable (SDL_DYNAMIC_API, ODBCINI,
    # OMPI_MCA_plm_rsh_agent runs a program, LOCALE_ARCHIVE on NixOS's glibc, ICU_DATA)
    "SDL_": "SDL", "ODBC": "unixODBC", "OMPI_": "Open MPI", "PMIX_": "PMIx", "HWLOC_": "hwloc",
    "ICU_": "ICU", "LOCALE_": "glibc's locales", "ELECTRON_": "Electron",
}
# Rule 2's exceptions: exact names crates print whose namespace's tools do not read them.
VALUE_NAMES: Final[frozenset[str]] = frozenset({
    "GIT_HASH", "GIT_SHA", "GIT_SHORT_HASH", "GIT_COMMIT", "GIT_COMMIT_HASH", "GIT_REVISION", "GIT_REV",
    "GIT_VERSION", "GIT_DESCRIBE", "GIT_BRANCH", "GIT_TAG", "GIT_DIRTY", "GIT_COMMIT_DATE",
})
# Rule 3: words (between `_`s) that tool settings are made of.
WORDS: Final[frozenset[str]] = frozenset({
    "PATH", "DIR", "DIRS", "HOME", "FILE", "FILES", "CONF", "CONFIG", "CFG", "RC", "OPTS", "OPTIONS", "ENV",
    "ARGS", "FLAGS", "PROXY", "BUNDLE", "PLUGIN", "PLUGINS", "MODULE", "MODULES", "PROGRAM", "PROG", "EXE",
    "BIN", "CMD", "COMMAND", "SHELL", "OUTPUT", "OUT", "ROOT", "SYSROOT", "WRAPPER", "RUNNER",
    "LINKER", "LAUNCHER", "DRIVER", "TOOL", "TOOLS", "TOOLCHAIN", "COMPILER", "INTERPRETER", "LIB", "LIBS",
    "LIBDIR", "EDITOR", "PAGER", "BROWSER", "TERMINAL", "DISPLAY", "SOCK", "SOCKET", "TRACE",
    "LOGFILE", "TOKEN", "CREDENTIALS", "PASSWORD", "PASSWD", "AUTH", "CERT", "CERTS", "CAINFO",
    "ENGINE", "ENGINES", "PROVIDER", "CACHE", "TMP", "TEMP", "TMPDIR", "CC", "CXX", "CPP", "AR", "LD",
    "NM", "MAKE", "CMAKE", "LINK", "URL", "URLS", "ENDPOINT", "SERVER", "REPRO", "HOOK", "HOOKS",
    # files that name libraries to load, and the libraries themselves (VK_ICD_FILENAMES, FOO_LAYERS, X_SO)
    "FILENAME", "FILENAMES", "ICD", "ICDS", "LAYER", "LAYERS", "VENDORS", "LIBRARY", "LIBRARIES", "SO",
    "DRIVERS", "BACKEND", "BACKENDS", "LOADER", "HISTFILE", "HISTORY", "STARTUP",
})
# Rule 4: endings that stay tool words when glued on (TMPDIR, GNUPGHOME, RUBYOPT, GOROOT, KUBECONFIG) ...
ENDINGS: Final[tuple[str, ...]] = (
    "DIR", "DIRS", "HOME", "OPT", "OPTS", "OPTIONS", "ROOT", "CMD", "COMMAND", "EXE", "PROG", "PROGRAM",
    "SHELL", "RC", "CONF", "OUTPUT", "LIB", "LIBS", "BIN", "CACHE", "WRAPPER", "SOCK", "TOOLCHAIN", "ENV",
    "PAGER", "FILENAME", "FILENAMES", "HISTFILE", "HISTORY", "LIBRARY", "LIBRARIES", "STARTUP",
    "INIT", "INI", "XMLFILE",  # VIMINIT/EXINIT (ex commands, `!cmd` too), ODBCSYSINI, HWLOC_XMLFILE
)
# ... and fragments found anywhere (CLASSPATH, CFLAGS, LD_PRELOAD_32, GIT_PROXY_COMMAND, SSLKEYLOGFILE).
PARTS: Final[tuple[str, ...]] = (
    "PATH", "PRELOAD", "REPRODUCE", "AUDIT", "PROXY", "ASKPASS", "FLAGS", "CONFIG", "MALLOC", "SANITIZ",
    "SYMBOLIZ", "KEYLOG", "INSTALL", "TUNABLE", "DEPENDENCIES", "OVERRIDE", "EXEC", "PLUGIN",
)
# Fragments tools read after any prefix: they stay refused in the crate's own namespace too.
ANY_PREFIX_PARTS: Final[tuple[str, ...]] = (
    "PROXY", "PRELOAD", "AUDIT", "ASKPASS", "MALLOC", "SANITIZ", "SYMBOLIZ", "KEYLOG", "TUNABLE", "REPRODUCE",
    "DEPENDENCIES", "OVERRIDE",
)
# Rule 5: single names that tools read.
NAMES: Final[frozenset[str]] = frozenset({
    "HOME", "USER", "LOGNAME", "PWD", "OLDPWD", "SHELL", "ENV", "IFS", "PS1", "PS2", "PS3", "PS4", "CDPATH",
    "PROMPT_COMMAND", "EDITOR", "VISUAL", "PAGER", "LESS", "LESSOPEN", "LESSCLOSE", "MORE", "BROWSER",
    "TMPDIR", "TMP", "TEMP", "TEMPDIR", "TZ", "TZDIR", "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS",
    "LOCALDOMAIN", "POSIXLY_CORRECT", "COLUMNS", "LINES", "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY",
    "MAIL", "MAILPATH", "NETRC", "WGETRC", "INPUTRC", "CC", "CXX", "CPP", "AR", "AS", "LD", "NM", "RANLIB",
    "STRIP", "OBJCOPY", "OBJDUMP", "READELF", "WINDRES", "DLLTOOL", "MAKE", "MAKEFILES", "MAKELEVEL",
    "MFLAGS", "GNUMAKEFLAGS", "CMAKE", "NINJA", "PROTOC", "FC", "F77", "YACC", "LEX", "M4", "GZIP", "BZIP",
    "BZIP2", "XZ_DEFAULTS", "ZSTD_CLEVEL", "TAPE", "GNUTARGET", "LDEMULATION", "SUNPRO_DEPENDENCIES",
    "LIB", "INCLUDE", "LINK", "CL", "_CL_", "_LINK_", "COMSPEC", "SYSTEMROOT", "WINDIR", "USERPROFILE",
    "APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "PROGRAMFILES", "SYSTEMDRIVE", "GOOS", "GOARCH", "CLASSPATH",
    "CI", "SOURCE_DATE_EPOCH", "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "PREFIX",
    "MAGIC", "MANOPT", "MANSECT", "MANWIDTH",
    # gcc's include paths (packages named `c`, `cplus`, `objc` would own them)
    "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH", "OBJCPLUS_INCLUDE_PATH",
})

# The loader subset (see the module docstring): host_spawn strips these from a granted child's environment.
LOADER_ENV_PREFIXES: Final[tuple[str, ...]] = (
    "LD_", "DYLD_", "MALLOC_", "GLIBC_", "GCONV_", "RUST", "CARGO", "CRATECAGE_", "SCCACHE_", "CCACHE_",
    "PYTHON", "PERL5", "PERL", "RUBY", "NODE_", "JAVA_", "_JAVA_", "JDK_JAVA_", "DOTNET_", "COMPLUS_",
    "GCC_", "COLLECT_", "ASAN_", "UBSAN_", "LSAN_", "MSAN_", "TSAN_",
)
LOADER_ENV_NAMES: Final[frozenset[str]] = frozenset({
    "PATH", "LIBRARY_PATH", "COMPILER_PATH", "CPATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS",
    "LOCALDOMAIN", "TZDIR", "TMPDIR", "TMP", "TEMP", "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
    "XDG_DATA_HOME", "SHELL", "BASH_ENV", "ENV", "IFS", "PS4", "PROMPT_COMMAND", "NODE_OPTIONS", "RUBYOPT",
    "RUBYLIB", "OPENSSL_CONF", "OPENSSL_ENGINES", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSH",
    "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "EDITOR",
    "VISUAL", "PAGER", "LESSOPEN", "LESSCLOSE", "MAKEFLAGS", "MFLAGS",
})

_NAMESPACE_PREFIXES: Final = tuple(NAMESPACES)


def own_namespace(name: str, package: str) -> bool:
    """Whether `name` is in the namespace of the package named `package` (`CRUNCHY_*` of crunchy)."""
    prefix = package.upper().replace("-", "_") + "_"
    return bool(package) and name.upper().startswith(prefix) and len(name) > len(prefix)


def tool_variable(name: str, package: str = "") -> str:
    """"" when `rustc-env` may set `name` without a grant; else why not (rules 1-5 of the docstring). A
    `package` name relaxes rules 3 and 4 for names in its own namespace (the docstring says how far)."""
    if not (name.isascii() and name.isidentifier()):  # exactly [A-Za-z_][A-Za-z0-9_]*
        return "not a plain identifier"
    upper = name.upper()
    if upper in NAMES:
        return f"{upper} is read by shells, the C library or the toolchain"
    if upper.startswith("_"):
        return "names with a leading `_` are tools' private settings (_JAVA_OPTIONS, _PYTHON_*, _LINK_)"
    if upper.startswith(_NAMESPACE_PREFIXES) and upper not in VALUE_NAMES:
        prefix = max((p for p in _NAMESPACE_PREFIXES if upper.startswith(p)), key=len)
        return f"`{prefix}*` is read by {NAMESPACES[prefix]}"
    if own_namespace(name, package):
        if loader_variable(name):
            return f"{upper} changes how programs load code or find tools"
        part = next((p for p in ANY_PREFIX_PARTS if p in upper), None)
        return f"names containing {part} configure tools whatever their prefix" if part else ""
    words = upper.split("_")
    word = next((w for w in words if w in WORDS), None) if len(words) > 1 else None
    if word is not None:
        return f"names with the word {word} configure tools"
    ending = next((e for e in ENDINGS if upper.endswith(e)), None)
    if ending is not None:
        return f"names ending in {ending} configure tools"
    part = next((p for p in PARTS if p in upper), None)
    if part is not None:
        return f"names containing {part} configure tools"
    return ""


def loader_variable(name: str) -> bool:
    """Whether `name` changes how a program loads code or finds tools (the LOADER_ENV_* subset)."""
    upper = name.upper()
    return upper in LOADER_ENV_NAMES or upper.startswith(LOADER_ENV_PREFIXES) or not name or "\0" in name
