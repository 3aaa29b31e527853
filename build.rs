//! Builds the bundled guests and embeds them in the VMM.
//!
//! The guests (guest/programs, with the firmware and the guest library) form
//! their own workspace, guest/, built for `x86_64-unknown-none`. This script
//!
//! 1. makes sure that target is installed (cargo does not install the targets
//!    of rust-toolchain.toml by itself), adding it with rustup if not;
//! 2. runs a nested `cargo build --release` in guest/, so that guest/.cargo/
//!    config.toml applies, with a clean environment and its own target
//!    directory under OUT_DIR;
//! 3. writes `$OUT_DIR/bundled_guests.rs`: one `BundledGuest` (src/guests.rs)
//!    per program in guest/programs/src/bin (kind `Guest`) and per module in
//!    guest/modules/src/bin (kind `Module`), sorted by name, with the summary
//!    from the file's first `//!` line and its ELF from `include_bytes!`.
//!
//! 4. builds the C SDK and the C guests of guest/c with the system C compiler
//!    (sdk/build.rs, a module of this script), bundles those guests too, and
//!    writes `$OUT_DIR/sdk_files.rs` for `kmemvisor sdk install`.
//!
//! Its one build-dependency is the ABI crate, for the numbers it writes into
//! the C SDK.

#[path = "sdk/build.rs"]
mod sdk;

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target the guests are built for.
const GUEST_TARGET: &str = "x86_64-unknown-none";
/// The package that holds the guest programs.
const GUEST_PACKAGE: &str = "kmemvisor-guests";
/// The package that holds the guest modules (and the module runtime).
const MODULE_PACKAGE: &str = "kmemvisor-modules";

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let guest_dir = manifest_dir.join("guest");

    println!("cargo:rerun-if-changed=build.rs");
    // KMEMVISOR_SKIP_KVM=1 compiles the KVM integration tests as ignored, so that
    // a run without /dev/kvm shows them as skipped rather than passed.
    println!("cargo:rustc-check-cfg=cfg(kmemvisor_skip_kvm)");
    println!("cargo:rerun-if-env-changed=KMEMVISOR_SKIP_KVM");
    if std::env::var("KMEMVISOR_SKIP_KVM").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=kmemvisor_skip_kvm");
    }
    for path in [
        "guest/lib",
        "guest/programs",
        "guest/modules",
        "guest/abi",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/.cargo",
        "firmware",
        "sdk",
        "guest/c",
    ] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(path).display());
    }

    ensure_target_installed();
    let target_dir = out_dir.join("guest-target");
    build_guests(&guest_dir, &target_dir);

    let elf_dir = target_dir.join(GUEST_TARGET).join("release");
    let mut bundled = programs(&guest_dir.join("programs/src/bin"), "Guest", &elf_dir);
    bundled.extend(programs(&guest_dir.join("modules/src/bin"), "Module", &elf_dir));

    let sdk = sdk::build(&manifest_dir, &out_dir);
    for (name, summary, elf) in sdk::build_c_guests(&sdk, &guest_dir.join("c"), &out_dir) {
        bundled.push(Program { name, summary, kind: "Guest", elf });
    }
    let files = out_dir.join("sdk_files.rs");
    fs::write(&files, sdk::files_source(&sdk)).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", files.display())));
    bundled.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = bundled.windows(2).find(|pair| pair[0].name == pair[1].name) {
        fail(&format!("`{}` is both a guest program and a guest module: rename one", pair[0].name));
    }
    let bundle = out_dir.join("bundled_guests.rs");
    fs::write(&bundle, bundle_source(&bundled)).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", bundle.display())));
}

/// One guest program or module: `src/bin/NAME.rs`.
struct Program {
    name: String,
    summary: String,
    /// The `guests::Kind` variant: `Guest` or `Module`.
    kind: &'static str,
    /// The built ELF.
    elf: PathBuf,
}

fn env_var(name: &str) -> OsString {
    env::var_os(name).unwrap_or_else(|| fail(&format!("cargo did not set {name}")))
}

/// Stops the build with `message` (cargo shows this script's stderr).
fn fail(message: &str) -> ! {
    eprintln!("\nerror: kmemvisor build.rs: {message}\n");
    std::process::exit(1);
}

/// Adds the guest target with rustup when the toolchain lacks it. rustup
/// honours the RUSTUP_TOOLCHAIN that cargo passes, so this is the toolchain
/// that builds the VMM.
fn ensure_target_installed() {
    let installed = match Command::new("rustup").args(["target", "list", "--installed"]).output() {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => fail(&format!(
            "`rustup target list --installed` failed ({}):\n{}\n\
             Install the guest target with `rustup target add {GUEST_TARGET}`.",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // No rustup: a toolchain installed some other way may still have the target.
            if sysroot_has_target() {
                return;
            }
            fail(&format!(
                "the guests need the Rust target {GUEST_TARGET}, which this toolchain lacks, \
                 and rustup is not installed to add it. Install rustup (https://rustup.rs) and \
                 run `rustup target add {GUEST_TARGET}`, or install the {GUEST_TARGET} standard \
                 library for this toolchain."
            ))
        }
        Err(e) => fail(&format!("cannot run rustup: {e}")),
    };
    if String::from_utf8_lossy(&installed).lines().any(|l| l.trim() == GUEST_TARGET) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run rustup: {e}")));
    if !status.success() {
        fail(&format!(
            "`rustup target add {GUEST_TARGET}` failed ({status}); the guests cannot be built \
             without it. Run it by hand (it needs network access once)."
        ));
    }
}

/// Whether the sysroot of the compiler cargo uses has the guest target's libraries.
fn sysroot_has_target() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot).join("lib/rustlib").join(GUEST_TARGET).join("lib").is_dir()
}

/// Whether the nested build must not see an environment variable of ours:
/// cargo's configuration and flags for the outer build, which would change how
/// (or where, or for what) the guests are built.
fn leaks_into_guest_build(name: &str) -> bool {
    const KEEP: &[&str] = &["CARGO_HOME", "CARGO_MAKEFLAGS"];
    const DROP: &[&str] = &["RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTC_BOOTSTRAP"];
    // Every CARGO_* variable: CARGO_ENCODED_RUSTFLAGS, CARGO_BUILD_*,
    // CARGO_TARGET_DIR, CARGO_TARGET_<triple>_*, CARGO_PROFILE_*,
    // CARGO_INCREMENTAL, and what cargo sets for this script (CARGO_PKG_*,
    // CARGO_CFG_*, CARGO_FEATURE_*, CARGO_MANIFEST_*...).
    (name.starts_with("CARGO_") && !KEEP.contains(&name)) || DROP.contains(&name)
}

/// Runs the nested cargo build of every guest program.
fn build_guests(guest_dir: &Path, target_dir: &Path) {
    let cargo = env_var("CARGO");
    let mut command = Command::new(&cargo);
    command
        .current_dir(guest_dir)
        .args(["build", "--release", "--locked", "--offline", "-p", GUEST_PACKAGE, "-p", MODULE_PACKAGE])
        .args(["--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        // Cargo parses our stdout; the nested build's messages go to stderr,
        // which cargo shows when this script fails.
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, _) in env::vars_os() {
        if let Some(name) = name.to_str()
            && leaks_into_guest_build(name)
        {
            command.env_remove(name);
        }
    }
    let status = command.status().unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", Path::new(&cargo).display())));
    if !status.success() {
        fail(&format!(
            "building the guests failed ({status}); the cargo output above says why. \
             To reproduce: cd {} && cargo build --release -p {GUEST_PACKAGE} -p {MODULE_PACKAGE}",
            guest_dir.display()
        ));
    }
}

/// The programs of `kind` in `bin_dir`, sorted by name, with their summaries.
fn programs(bin_dir: &Path, kind: &'static str, elf_dir: &Path) -> Vec<Program> {
    let entries = fs::read_dir(bin_dir).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", bin_dir.display())));
    let mut programs = Vec::new();
    for entry in entries {
        let path = entry.unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", bin_dir.display()))).path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_else(|| fail(&format!("{} is not named in UTF-8", path.display())));
        let source = fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
        let summary = source
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("//!"))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fail(&format!("{} must start with a `//!` one-line summary", path.display())));
        programs.push(Program { name: name.to_owned(), summary, kind, elf: elf_dir.join(name) });
    }
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    programs
}

/// The Rust source of `BUNDLED`.
fn bundle_source(programs: &[Program]) -> String {
    let mut source = String::from(
        "// Generated by build.rs: the guests built from guest/programs, guest/modules and guest/c.\n\
         /// The guests and modules bundled with kmemvisor (guest/programs/src/bin,\n\
         /// guest/modules/src/bin, guest/c), sorted by name.\n\
         pub static BUNDLED: &[BundledGuest] = &[\n",
    );
    for program in programs {
        let elf = &program.elf;
        if !elf.is_file() {
            fail(&format!("the guest build did not produce {}", elf.display()));
        }
        let elf =
            elf.to_str().unwrap_or_else(|| fail(&format!("{} is not a UTF-8 path: include_bytes! needs one", elf.display())));
        // `{:?}` of a str is a valid Rust string literal.
        let _ = writeln!(
            source,
            "    BundledGuest {{ name: {:?}, summary: {:?}, kind: Kind::{}, elf: include_bytes!({:?}) }},",
            program.name, program.summary, program.kind, elf
        );
    }
    source.push_str("];\n");
    source
}
