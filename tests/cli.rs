//! The command line: listing, help, usage errors, and the host files and
//! guest images refused before a guest runs (no KVM needed, except where a
//! guest must be loaded).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, kmemvisor, kvm_or_skip};
use kmemvisor::guests;
use kmemvisor_abi::layout;

#[test]
fn list_names_every_bundled_guest_with_a_summary() {
    let r = kmemvisor(&["list"]);
    r.expect_status(0);
    for guest in ["hello", "page-fault", "panic", "triple-fault", "runaway", "smp", "hostile", "stray-io", "bench"] {
        let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(guest));
        let line = line.unwrap_or_else(|| panic!("{guest} missing from:\n{}", r.stdout));
        assert!(line.len() > guest.len() + 10, "{guest} has no summary: `{line}`");
    }
}

#[test]
fn help_documents_the_exit_statuses() {
    let r = kmemvisor(&["run", "--help"]);
    r.expect_status(0);
    for text in ["--timeout", "--report", "--strict", "--vcpus", "--mem", "--module", "EXIT STATUS", "71  --timeout expired"] {
        assert!(r.stdout.contains(text), "`{text}` missing from:\n{}", r.stdout);
    }
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["run", "no-such-guest"][..],
        &["run", "hello", "--vcpus", "17"],
        &["run", "hello", "--vcpus", "0"],
        &["run", "hello", "--mem", "1M"],
        &["run", "hello", "--mem", "65M"],
        &["run", "hello", "--timeout", "-1"],
        &["frobnicate"],
    ] {
        let r = kmemvisor(args);
        assert_eq!(r.status, 64, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty(), "{args:?} printed no error");
    }
}

#[test]
fn a_file_that_is_not_a_guest_image_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("not-a-guest.elf");
    std::fs::write(&path, "#!/bin/sh\n".repeat(20)).expect("write");
    let r = kmemvisor(&["run", path.to_str().expect("utf-8 path")]);
    assert_eq!(r.status, 78, "{}", r.stderr);
    let expected = format!(
        "kmemvisor: Cannot load the guest image `{}`\n  caused by: Not a static x86-64 ELF executable: no ELF magic",
        path.display()
    );
    assert!(r.stderr.contains(&expected), "`{expected}` missing from:\n{}", r.stderr);
}

/// Runs `kmemvisor ARGS…` and fails the test if it has not ended within
/// `DEADLINE`: a refused input must be refused at once, not block or read forever.
fn kmemvisor_within_deadline(args: &[&str]) -> Run {
    const DEADLINE: Duration = Duration::from_secs(20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kmemvisor starts");
    // Drained on threads, so that a full pipe cannot stall the child.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kmemvisor") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kmemvisor {args:?} did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
        report: None,
    }
}

#[test]
fn durations_and_sizes_too_large_for_the_vmm_are_usage_errors() {
    let too_long = |text: &str| format!("`{text}` is too long: at most 31536000 seconds (365 days)");
    let too_long_duration = |text: &str| format!("`{text}` is too long: at most 31536000s (365 days)");
    let cases: Vec<(Vec<&str>, String)> = vec![
        // Each of these panicked in Duration::from_secs_f64 (exit status 101).
        (vec!["--timeout", "1e300"], too_long("1e300")),
        (vec!["--timeout", "2e19"], too_long("2e19")),
        (vec!["--timeout", "inf"], too_long("inf")),
        (vec!["--timeout", "31536000.5"], too_long("31536000.5")),
        (vec!["--timeout", "NaN"], "`NaN` is not a number of seconds from 0 (no limit) up".to_owned()),
        (vec!["--timeout", "1e-12"], "`1e-12` is shorter than a nanosecond".to_owned()),
        (vec!["--hidden-stall-timeout", "99999999999999999999999s"], too_long_duration("99999999999999999999999s")),
        (vec!["--hidden-stall-timeout", "31536001s"], too_long_duration("31536001s")),
        // Device time counts exits: a time is explained, a huge count refused.
        (vec!["--dma-latency", "1099511627777"], "`1099511627777` is too many exits: at most 1099511627776".to_owned()),
        (
            vec!["--dma-jitter", "18446744073709551615"],
            "`18446744073709551615` is too many exits: at most 1099511627776".to_owned(),
        ),
        (vec!["--dma-jitter", "99999999999999999999"], "`99999999999999999999` is not a number of exits".to_owned()),
        (
            vec!["--dma-latency", "50ms"],
            "`50ms` is a time, but device time counts guest exits (hypercalls, port and MMIO accesses): give a number, such as 8"
                .to_owned(),
        ),
        (vec!["--dma-latency", "1e300s"], "`1e300s` is not a number of exits".to_owned()),
        (vec!["--mem", "99999999999999999999999M"], "`99999999999999999999999M` is too large".to_owned()),
        (vec!["--mem", "17179869184G"], "`17179869184G` is too large".to_owned()),
    ];
    for (options, expected) in cases {
        let args: Vec<&str> = ["run", "hello"].into_iter().chain(options.iter().copied()).collect();
        let r = kmemvisor_within_deadline(&args);
        assert_eq!(r.status, 64, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(&expected), "{args:?}: `{expected}` missing from:\n{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_longest_durations_are_accepted() {
    if !kvm_or_skip("the_longest_durations_are_accepted") {
        return;
    }
    let r = kmemvisor_within_deadline(&[
        "run",
        "hello",
        "--timeout",
        "31536000",
        "--hidden-stall-timeout",
        "31536000s",
        "--dma-latency",
        "1099511627776",
        "--dma-jitter",
        "1099511627776",
    ]);
    r.expect_status(0);
}

/// `what` at `path` is refused unread with exit status 78, quickly, as a guest
/// and as a module.
fn refused_unread(path: &Path, reason: &str) {
    let path = path.to_str().expect("utf-8 path");
    let r = kmemvisor_within_deadline(&["run", path]);
    assert_eq!(r.status, 78, "{path}: {}", r.stderr);
    let expected = format!("kmemvisor: Cannot load the guest image `{path}`: {reason}");
    assert!(r.stderr.contains(&expected), "`{expected}` missing from:\n{}", r.stderr);
    let r = kmemvisor_within_deadline(&["run", "hello", "--module", path]);
    assert_eq!(r.status, 78, "--module {path}: {}", r.stderr);
    let expected = format!("kmemvisor: Cannot load the module `{path}`: {reason}");
    assert!(r.stderr.contains(&expected), "`{expected}` missing from:\n{}", r.stderr);
    assert!(r.stdout.is_empty(), "the guest never ran: {}", r.stdout);
}

#[test]
fn host_files_that_are_not_regular_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A FIFO without a writer: opening it for reading blocked forever.
    let fifo = dir.path().join("guest.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    refused_unread(&fifo, "it is a FIFO, not a regular file");
    // /dev/zero never ends: reading it ran out of memory.
    refused_unread(Path::new("/dev/zero"), "it is a character device, not a regular file");
    refused_unread(dir.path(), "it is a directory, not a regular file");
}

#[test]
fn a_file_larger_than_any_guest_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("huge.elf");
    // Sparse: 64 MiB and one byte without writing them.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len((64 << 20) + 1).expect("set_len");
    refused_unread(&path, "it is 67108865 bytes, more than the 67108864 bytes (64 MiB) a guest ELF may have");
}

/// Adds a PT_LOAD program header to `elf` (a bundled ELF, whose program headers
/// are followed by padding up to its first segment) that has `filesz` bytes
/// from offset 0 of the file and `memsz` bytes in memory at `paddr`.
fn add_load_segment(elf: &mut [u8], paddr: u64, filesz: u64, memsz: u64) {
    let u64_at = |elf: &[u8], at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8 bytes"));
    let phoff = usize::try_from(u64_at(elf, 32)).expect("e_phoff");
    let phnum = usize::from(u16::from_le_bytes([elf[56], elf[57]]));
    let at = phoff + 56 * phnum;
    assert!(elf[at..at + 56].iter().all(|&b| b == 0), "no room for another program header");
    let mut phdr = Vec::with_capacity(56);
    phdr.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    phdr.extend_from_slice(&6u32.to_le_bytes()); // PF_R | PF_W
    phdr.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    phdr.extend_from_slice(&(paddr + layout::IMAGE_VA_OFFSET).to_le_bytes()); // p_vaddr
    phdr.extend_from_slice(&paddr.to_le_bytes()); // p_paddr
    phdr.extend_from_slice(&filesz.to_le_bytes());
    phdr.extend_from_slice(&memsz.to_le_bytes());
    phdr.extend_from_slice(&layout::PAGE_SIZE.to_le_bytes()); // p_align
    elf[at..at + 56].copy_from_slice(&phdr);
    let phnum = u16::try_from(phnum + 1).expect("e_phnum");
    elf[56..58].copy_from_slice(&phnum.to_le_bytes());
}

#[test]
fn a_guest_segment_with_no_memory_size_cannot_write_the_vcpu_pages() {
    // p_memsz 0 with 64 bytes in the file: linux-loader copied them over the
    // vCPU pages, and the loader's checks skipped the segment.
    let mut elf = guests::find("hello").expect("bundled").elf.to_vec();
    add_load_segment(&mut elf, layout::VCPU_PAGES_GPA, 64, 0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("hello-plus");
    std::fs::write(&path, &elf).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let r = kmemvisor_within_deadline(&["run", path]);
    assert_eq!(r.status, 78, "{}", r.stderr);
    let expected = format!(
        "kmemvisor: Cannot load the guest image `{path}`\n  caused by: Segment at {:#x} (physical {:#x}, 0 bytes) \
         has more bytes in the file (p_filesz) than in memory (p_memsz)",
        layout::VCPU_PAGES_GPA + layout::IMAGE_VA_OFFSET,
        layout::VCPU_PAGES_GPA
    );
    assert!(r.stderr.contains(&expected), "`{expected}` missing from:\n{}", r.stderr);
    assert!(r.stdout.is_empty(), "the guest never ran: {}", r.stdout);
}

#[test]
fn a_module_segment_with_no_memory_size_cannot_overwrite_the_image() {
    // Aimed at the main image's header and code: the overlap check saw no
    // pages in it, and linux-loader copied its bytes after that check.
    let mut elf = guests::find("mod-sample").expect("bundled").elf.to_vec();
    add_load_segment(&mut elf, layout::IMAGE_GPA, 4096, 0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("evil-module");
    std::fs::write(&path, &elf).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let r = kmemvisor_within_deadline(&["run", "hello", "--module", path]);
    assert_eq!(r.status, 78, "{}", r.stderr);
    let expected = format!(
        "kmemvisor: Cannot load the module `evil-module` from {path}\n  caused by: Segment at {:#x} (physical {:#x}, 0 bytes) \
         has more bytes in the file (p_filesz) than in memory (p_memsz)",
        layout::IMAGE_VA,
        layout::IMAGE_GPA
    );
    assert!(r.stderr.contains(&expected), "`{expected}` missing from:\n{}", r.stderr);
    assert!(r.stdout.is_empty(), "the guest never ran: {}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_report_that_cannot_be_written_has_its_own_status() {
    if !kvm_or_skip("report not written") {
        return;
    }
    let r = kmemvisor(&["run", "hello", "--report", "/nonexistent-directory/report.json"]);
    assert_eq!(r.status, 79, "{}", r.stderr);
    assert!(r.stderr.contains("kmemvisor: cannot write the report to /nonexistent-directory/report.json: "), "{}", r.stderr);
}

#[test]
fn usage_errors_point_at_the_fix() {
    let r = kmemvisor(&["run", "hello", "aix-correct"]);
    assert_eq!(r.status, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: arguments for the guest go after `--`: kmemvisor run GUEST [OPTIONS] -- ARGS"),
        "{}",
        r.stderr
    );
    let r = kmemvisor(&["run", "dma-handof"]);
    assert_eq!(r.status, 64, "{}", r.stderr);
    assert!(r.stderr.contains("; did you mean `dma-handoff`?"), "{}", r.stderr);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn report_dash_writes_the_report_to_stdout_after_the_guest_output() {
    if !kvm_or_skip("report -") {
        return;
    }
    let r = kmemvisor(&["run", "hello", "--report", "-"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let (console, report) = r.stdout.split_once('{').expect("a JSON object after the console");
    assert_eq!(
        console,
        format!("Hello from kmemvisor: vCPU 0 of 1, ABI v{}.{}\n", kmemvisor_abi::ABI_MAJOR, kmemvisor_abi::ABI_MINOR)
    );
    let report: serde_json::Value = serde_json::from_str(&format!("{{{report}")).expect("JSON");
    assert_eq!(report["exit"]["status"], 0);
    assert_eq!(report["guest"], "hello");
}
