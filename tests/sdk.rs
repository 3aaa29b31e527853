//! The C SDK: `kmemvisor sdk install`, a driver built outside the repository
//! with pkg-config and with `kmemvisor cc`, run under real KVM; the C header's
//! numbers against the Rust definitions, through a C compiler.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{kmemvisor, kvm_or_skip};
use kmemvisor_abi::{Service, ServiceGroup, Status, aix, aix_vmm, dgux, dma, layout, xmem};

/// Installs the SDK under `dir/sdk` and returns the prefix.
fn install(dir: &Path) -> PathBuf {
    let prefix = dir.join("sdk");
    let r = kmemvisor(&["sdk", "install", "--prefix", &prefix.display().to_string()]);
    assert_eq!(r.status, 0, "sdk install failed:\n{}", r.stderr);
    assert!(r.stdout.contains("pkg-config --cflags --libs kmemvisor"), "{}", r.stdout);
    prefix
}

/// Runs `command` and returns its stdout; fails the test with its output otherwise.
fn output_of(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every number a C driver sees, with the value the Rust side defines.
fn expected_numbers() -> BTreeMap<String, u64> {
    let mut numbers: BTreeMap<String, u64> = Service::ALL
        .iter()
        .map(|s| (format!("KMV_SERVICE_{}", s.name().to_ascii_uppercase()), s.number()))
        .chain(Status::ALL.iter().map(|s| (s.name().to_owned(), s.code())))
        .collect();
    let constants: [(&str, u64); 44] = [
        ("KMV_ABI_VERSION", kmemvisor_abi::ABI_VERSION),
        ("KMV_HYPERCALL_PORT", u64::from(kmemvisor_abi::HYPERCALL_PORT)),
        ("VM_BYTE_ALIGNED", u64::from(dgux::VM_BYTE_ALIGNED)),
        ("VM_WORD_ALIGNED", u64::from(dgux::VM_WORD_ALIGNED)),
        ("VM_DOUBLE_WORD_ALIGNED", u64::from(dgux::VM_DOUBLE_WORD_ALIGNED)),
        ("VM_DEFAULT_ALIGNMENT", u64::from(dgux::VM_DEFAULT_ALIGNMENT)),
        ("VM_PAGE_ALIGNED", u64::from(dgux::VM_PAGE_ALIGNED)),
        ("VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS", u64::from(dgux::VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS)),
        ("SC_READ_ACCESS", dgux::SC_READ_ACCESS),
        ("SC_WRITE_ACCESS", dgux::SC_WRITE_ACCESS),
        ("SC_EXECUTE_ACCESS", dgux::SC_EXECUTE_ACCESS),
        ("PROT_READ", dgux::PROT_READ),
        ("PROT_WRITE", dgux::PROT_WRITE),
        ("PROT_EXEC", dgux::PROT_EXEC),
        ("MAP_SHARED", dgux::MAP_SHARED),
        ("MAP_PRIVATE", dgux::MAP_PRIVATE),
        ("VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK", dgux::VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK),
        ("VM_MMAP_WRITE_THROUGH_MASK", dgux::VM_MMAP_WRITE_THROUGH_MASK),
        ("VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK", dgux::VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK),
        ("VM_INVALID_PHYSICAL_ADDRESS", dgux::VM_INVALID_PHYSICAL_ADDRESS),
        ("UIO_USERSPACE", aix::UIO_USERSPACE),
        ("UIO_SYSSPACE", aix::UIO_SYSSPACE),
        ("UIO_READ", aix::UIO_READ),
        ("UIO_WRITE", aix::UIO_WRITE),
        ("kernel_heap", aix::KERNEL_HEAP),
        ("pinned_heap", aix::PINNED_HEAP),
        ("USER_ADSPACE", xmem::USER_ADSPACE),
        ("SYS_ADSPACE", xmem::SYS_ADSPACE),
        ("XMEM_HIDE", xmem::XMEM_HIDE),
        ("XMEM_UNHIDE", xmem::XMEM_UNHIDE),
        ("XMEM_FAIL", xmem::XMEM_FAIL),
        ("KMV_DMA_ENGINE_GPA", dma::DMA_ENGINE_GPA),
        ("KMV_DMA_REG_DOORBELL", dma::REG_DOORBELL),
        ("KMV_DMA_REG_INTERRUPT", dma::REG_INTERRUPT),
        ("KMV_DMA_DIR_FROM_DEVICE", dma::DIR_FROM_DEVICE),
        ("KMV_DMA_STATUS_DONE", dma::STATUS_DONE),
        ("KMV_PAGE_SIZE", layout::PAGE_SIZE),
        ("V_CLIENT", aix_vmm::V_CLIENT),
        ("RDONLY", aix_vmm::RDONLY),
        ("INVLSID", aix_vmm::INVLSID),
        ("D_REMOTE", aix_vmm::D_REMOTE),
        ("KMV_VM_MAX_PAGING_BUFS", aix_vmm::VM_MAX_PAGING_BUFS),
        ("KMV_IO_HANDLE_PAGES_MASK", aix_vmm::IO_HANDLE_PAGES_MASK),
        ("sizeof(struct xmem)", xmem::XMEM_SIZE),
    ];
    numbers.extend(constants.map(|(name, value)| (name.to_owned(), value)));
    numbers
}

/// Every number of the installed headers, as a host C program compiled
/// against them prints it, equals the Rust definition; and the header names
/// every service.
#[test]
fn the_c_headers_numbers_are_the_rust_definitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = install(dir.path());
    let expected = expected_numbers();
    let mut program = String::from(
        "#include <stdio.h>\n#include <kmemvisor/abi.h>\n#include <kmemvisor/dgux.h>\n#include <kmemvisor/aix.h>\n\
         heapaddr_t kernel_heap = KMV_KERNEL_HEAP, pinned_heap = KMV_PINNED_HEAP;\nint main(void) {\n",
    );
    for name in expected.keys() {
        // Through unsigned long long, as a driver comparing a returned value would.
        program.push_str(&format!("    printf(\"%s %llu\\n\", \"{name}\", (unsigned long long)({name}));\n"));
    }
    program.push_str("    return 0;\n}\n");
    let source = dir.path().join("numbers.c");
    std::fs::write(&source, program).expect("write numbers.c");
    let binary = dir.path().join("numbers");
    output_of(
        Command::new("cc").arg("-Wall").arg("-Werror").arg("-I").arg(prefix.join("include")).arg(&source).arg("-o").arg(&binary),
    );
    let printed: BTreeMap<String, u64> = output_of(&mut Command::new(&binary))
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("NAME VALUE");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect();
    assert_eq!(printed, expected);

    let header = std::fs::read_to_string(prefix.join("include/kmemvisor/abi.h")).expect("abi.h");
    let services = header.lines().filter(|line| line.starts_with("#define KMV_SERVICE_")).count();
    assert_eq!(services, Service::ALL.len());
}

/// Whether C source `text` declares or defines a function `name` outside a comment.
fn names_function(text: &str, name: &str) -> bool {
    let (plain, pointer) = (format!(" {name}("), format!("*{name}("));
    text.lines()
        .filter(|line| !line.trim_start().starts_with("/*") && !line.trim_start().starts_with('*'))
        .any(|line| line.contains(&plain) || line.contains(&pointer))
}

/// Every kernel service (every group but the VMM's own calls, which the C
/// runtime wraps as `kmv_*`) has a prototype in the installed headers, under
/// its own name, and a definition in the SDK's runtime.
#[test]
fn every_kernel_service_has_a_c_prototype_and_a_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let include = install(dir.path()).join("include/kmemvisor");
    let mut headers = String::new();
    for entry in std::fs::read_dir(&include).expect("include/kmemvisor") {
        headers.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("a header"));
    }
    let runtime = include_str!("../sdk/runtime/common/services.c");
    let kernel = Service::ALL.iter().filter(|s| s.group() != ServiceGroup::Core);
    let undeclared: Vec<&str> = kernel.clone().map(|s| s.name()).filter(|name| !names_function(&headers, name)).collect();
    let undefined: Vec<&str> = kernel.map(|s| s.name()).filter(|name| !names_function(runtime, name)).collect();
    assert!(undeclared.is_empty(), "no C prototype: {undeclared:?}");
    assert!(undefined.is_empty(), "no definition in sdk/runtime/common/services.c: {undefined:?}");
}

const DRIVER: &str = r#"#include <kmemvisor.h>

int main(int argc, char **argv)
{
    printf("argc=%d", argc);
    for (int i = 0; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf("\n%5d|%-5d|%05x|%#x|%s|%.3s|%c|%lld|%zu|%p|%%\n", 42, 42, 255, 255, "str", "abcdef", 'Z',
           -1234567890123LL, (size_t)7, (void *)0x1000);
    if (argc > 1 && strcmp(argv[1], "module") == 0) {
        const struct kmv_module *m = kmv_find_module("mod-sample");
        GUEST_ASSERT(m != 0 && kmv_find_module("mod-sampl") == 0);
        GUEST_ASSERT_EQ(kmv_module_call(m, 14), 43);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "skip") == 0) {
        report_skip("nothing to do");
        return report_summary();
    }
    pointertoanytype p = vm_get_wired_memory(100, VM_DEFAULT_ALIGNMENT);
    GUEST_ASSERT(p != VM_INVALID_MEMORY_PTR);
    report(xmfree(xmalloc(64, 3, kernel_heap), kernel_heap) == 0, "xmalloc and xmfree");
    if (argc > 1 && strcmp(argv[1], "short-release") == 0)
        vm_release_wired_memory(p, 99);
    else
        vm_release_wired_memory(p, 100);
    if (argc > 1 && strcmp(argv[1], "assert") == 0)
        GUEST_ASSERT_EQ(1 + 1, 3); /* ASSERT LINE */
    return report_summary();
}
"#;

/// A guest module in C: the twin of the bundled `mod-sample`, which the
/// bundled `modules` guest loads, calls and pins.
const MODULE: &str = r#"#include <kmemvisor.h>

static uint64_t calls;

static uint64_t triple_plus_one(uint64_t argument)
{
    calls++;
    printf("c module: call %llu: %llu\n", (unsigned long long)calls, (unsigned long long)argument);
    return argument * 3 + 1;
}

KMV_MODULE_ENTRY(triple_plus_one)
"#;

/// The line of DRIVER that holds `marker`.
fn line_of(marker: &str) -> usize {
    DRIVER.lines().position(|line| line.contains(marker)).expect("marker") + 1
}

/// Runs the guest ELF at `elf` and returns the run.
fn run_elf(elf: &Path, args: &[&str]) -> common::Run {
    let mut all = vec!["--"];
    all.extend_from_slice(args);
    common::run(&elf.display().to_string(), &all)
}

fn violation_kinds(r: &common::Run) -> Vec<String> {
    r.report()["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["kind"].as_str().expect("kind").to_owned())
        .collect()
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_driver_built_with_pkg_config_outside_the_repository_runs() {
    if !kvm_or_skip("sdk pkg-config driver") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = install(dir.path());
    std::fs::write(dir.path().join("driver.c"), DRIVER).expect("write driver.c");
    // The command line the SDK documents, as a shell runs it.
    output_of(
        Command::new("sh")
            .arg("-c")
            .arg("cc $(pkg-config --cflags --libs kmemvisor) driver.c -o driver.elf")
            .current_dir(dir.path())
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
    );
    let elf = dir.path().join("driver.elf");

    let r = run_elf(&elf, &["one", "two"]);
    r.expect_status(0);
    assert!(r.stdout.contains("argc=3 [guest] [one] [two]\n"), "{}", r.stdout);
    assert!(r.stdout.contains("\n   42|42   |000ff|0xff|str|abc|Z|-1234567890123|7|0x1000|%\n"), "{}", r.stdout);
    assert!(r.stdout.contains("PASS: xmalloc and xmfree\nSUMMARY: 1 tests, 0 unexpected failures, 0 skipped\n"), "{}", r.stdout);
    assert!(violation_kinds(&r).is_empty());

    let r = run_elf(&elf, &["short-release"]);
    r.expect_status(65);
    assert_eq!(violation_kinds(&r), ["dgux.release-size-mismatch", "leak.dgux-allocation"]);

    let r = run_elf(&elf, &["assert"]);
    r.expect_status(67);
    let at = format!("driver.c:{}", line_of("ASSERT LINE"));
    assert!(r.stderr.contains(&at), "no {at} in:\n{}", r.stderr);
    assert!(r.stderr.contains("GUEST_ASSERT_EQ failed: 1 + 1 == 3: 2 (0x2) != 3 (0x3)"), "{}", r.stderr);

    // The image finds and calls the bundled Rust module.
    let r = common::run(&elf.display().to_string(), &["--module", "mod-sample", "--", "module"]);
    r.expect_status(0);
    assert!(r.stdout.contains("mod-sample: call 1: 14 -> 43"), "{}", r.stdout);

    // A module, built with kmemvisor-module.pc at slot 0, replaces the bundled mod-sample.
    std::fs::write(dir.path().join("module.c"), MODULE).expect("write module.c");
    output_of(
        Command::new("sh")
            .arg("-c")
            .arg("cc $(pkg-config --define-variable=slot=0 --cflags --libs kmemvisor-module) module.c -o mod-sample")
            .current_dir(dir.path())
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
    );
    let module = dir.path().join("mod-sample").display().to_string();
    let r = common::run("modules", &["--module", &module]);
    r.expect_status(0);
    assert!(r.stdout.contains("c module: call 1: 14\n"), "{}", r.stdout);
    assert!(r.stdout.contains("SUMMARY: 5 passed, 0 failed, 0 skipped"), "{}", r.stdout);

    // report_summary: 0 when nothing failed, even with everything skipped.
    let r = run_elf(&elf, &["skip"]);
    assert!(r.stdout.contains("SKIP: nothing to do\nSUMMARY: 1 tests, 0 unexpected failures, 1 skipped\n"), "{}", r.stdout);
    r.expect_status(0);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn kmemvisor_cc_builds_a_guest_without_an_install() {
    if !kvm_or_skip("kmemvisor cc") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("driver.c"), DRIVER).expect("write driver.c");
    let cc = |args: &[&str]| {
        output_of(
            Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
                .arg("cc")
                .args(args)
                .current_dir(dir.path())
                .env("XDG_CACHE_HOME", dir.path().join("cache")),
        )
    };
    cc(&["-c", "driver.c", "-o", "driver.o"]);
    assert!(dir.path().join("driver.o").is_file());
    cc(&["-O2", "driver.o", "-o", "driver.elf"]);
    run_elf(&dir.path().join("driver.elf"), &[]).expect_status(0);
    std::fs::write(dir.path().join("module.c"), MODULE).expect("write module.c");
    cc(&["--module", "0", "module.c", "-o", "mod-sample"]);
    let r = common::run("modules", &["--module", &dir.path().join("mod-sample").display().to_string()]);
    r.expect_status(0);
    assert!(r.stdout.contains("SUMMARY: 5 passed, 0 failed, 0 skipped"), "{}", r.stdout);
    // The SDK was kept in the cache.
    let kept = std::fs::read_dir(dir.path().join("cache/kmemvisor")).expect("cache").count();
    assert_eq!(kept, 1);
}

#[test]
fn kmemvisor_cc_passes_the_compilers_failure_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.c"), "int main(void) { return undefined_thing; }\n").expect("write bad.c");
    let out = Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .args(["cc", "bad.c", "-o", "bad.elf"])
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .expect("kmemvisor cc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("undefined_thing"));
}

/// The SDK with clang, where clang is installed (the SDK's flags are common
/// to gcc and clang); says so and checks nothing where it is not.
#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn clang_builds_the_same_driver_where_installed() {
    if !kvm_or_skip("kmemvisor cc with clang") {
        return;
    }
    if Command::new("clang").arg("--version").output().is_err() {
        eprintln!("clang_builds_the_same_driver_where_installed: skipped: clang is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("driver.c"), DRIVER).expect("write driver.c");
    let out = Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .args(["cc", "-O2", "-Wall", "-Werror", "driver.c", "-o", "driver.elf"])
        .current_dir(dir.path())
        .env("CC", "clang")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .expect("kmemvisor cc runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "clang warned:\n{}", String::from_utf8_lossy(&out.stderr));
    let r = run_elf(&dir.path().join("driver.elf"), &["one"]);
    r.expect_status(0);
    assert!(r.stdout.contains("\n   42|42   |000ff|0xff|str|abc|Z|-1234567890123|7|0x1000|%\n"), "{}", r.stdout);
}
