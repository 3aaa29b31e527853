//! `kmemvisor new`: a C and a Rust guest project created outside the
//! repository build the first time and run under real KVM; a Rust guest
//! linked without kmemvisor's linker script fails at link time, saying what
//! to add.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{kmemvisor, kvm_or_skip};

/// `command` with none of the outer cargo's variables, as a user's shell runs it.
fn clean(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && ((name.starts_with("CARGO") && name != "CARGO_HOME") || name.starts_with("RUST"))
            && name != "RUSTUP_HOME"
        {
            command.env_remove(name);
        }
    }
    command
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("{command:?} does not run: {e}"))
}

fn succeeds(command: &mut Command) {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn new(dir: &Path, args: &[&str]) {
    let mut all = vec!["new", "--dir", dir.to_str().expect("UTF-8 temp dir")];
    all.extend_from_slice(args);
    let r = kmemvisor(&all);
    assert_eq!(r.status, 0, "kmemvisor new failed:\n{}", r.stderr);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_new_c_guest_builds_with_make_and_runs() {
    if !kvm_or_skip("kmemvisor new --lang c") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    new(dir.path(), &["cdriver"]);
    let project = dir.path().join("cdriver");
    // The Makefile's `kmemvisor cc` keeps the SDK in the cache directory.
    succeeds(clean(&mut Command::new("make")).current_dir(&project).env("XDG_CACHE_HOME", dir.path().join("cache")));
    let r = common::run(&project.join("cdriver.elf").display().to_string(), &["--", "x"]);
    r.expect_status(0);
    assert!(r.stdout.contains("cdriver: running with 1 argument(s)\nPASS: vm_get_wired_memory\n"), "{}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_new_rust_guest_builds_with_cargo_and_runs_and_needs_the_linker_script() {
    if !kvm_or_skip("kmemvisor new --lang rust") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = env!("CARGO_MANIFEST_DIR");
    new(dir.path(), &["rdriver", "--lang", "rust", "--source", source]);
    let project = dir.path().join("rdriver");
    let cargo = || {
        let mut command = Command::new("cargo");
        clean(&mut command).args(["build", "--release", "--offline"]).current_dir(&project);
        command
    };
    succeeds(&mut cargo());
    let elf = project.join("target/x86_64-unknown-none/release/rdriver");
    let r = common::run(&elf.display().to_string(), &["--", "a", "b"]);
    r.expect_status(0);
    assert!(r.stdout.contains("rdriver: running with 2 argument(s)\nrdriver: done\n"), "{}", r.stdout);

    // Without the build script that adds -Tkmemvisor.ld, the link fails and says so.
    std::fs::write(project.join("build.rs"), "fn main() {}\n").expect("rewrite build.rs");
    let out = output(&mut cargo());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("undefined symbol: add_Tkmemvisor_ld_to_the_link_flags"), "{stderr}");
}

#[test]
fn bad_names_and_existing_directories_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("UTF-8");
    let r = kmemvisor(&["new", "--dir", d, "9lives"]);
    assert_eq!(r.status, 64);
    assert!(r.stderr.contains("`9lives` is not a usable project name"), "{}", r.stderr);
    std::fs::create_dir(dir.path().join("taken")).expect("mkdir");
    let r = kmemvisor(&["new", "--dir", d, "taken"]);
    assert_eq!(r.status, 64);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}
