//! Symbolised diagnostics under real KVM: violations, exceptions, panics and
//! touches of hidden pages name the guest's function and file:line, read
//! from the guest's DWARF, in the report (`location`, `frames`) and on stderr.

mod common;

use common::{Run, kvm_or_skip, run, violations};
use object::{Object, ObjectSegment};
use serde_json::Value;

/// The source of bundled guest program `name`.
fn source_path(name: &str) -> String {
    format!("guest/programs/src/bin/{name}.rs")
}

/// The 1-based line of `source_path(name)` that contains `marker`, which
/// must appear exactly once.
fn line_of(name: &str, marker: &str) -> u64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(source_path(name));
    let text = std::fs::read_to_string(&path).expect("guest source");
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(marker)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "`{marker}` in {}: {lines:?}", path.display());
    lines[0] as u64
}

fn hex(value: &Value) -> u64 {
    let text = value.as_str().expect("a hex string");
    u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex")
}

/// Asserts that `location` is at `line` of guest program `name`, in `function`.
fn expect_at(location: &Value, name: &str, function: &str, line: u64) {
    let file = location["file"].as_str().unwrap_or_default();
    assert!(file.ends_with(&source_path(name)), "{location:#}");
    assert_eq!(location["function"], function, "{location:#}");
    assert_eq!(location["line"], line, "{location:#}");
}

/// The byte of bundled guest `name`'s image at guest-virtual `va`.
fn image_byte(name: &str, va: u64) -> u8 {
    let elf = kmemvisor::guests::find(name).expect("bundled").elf;
    let file = object::File::parse(elf).expect("elf");
    let segment = file.segments().find(|s| (s.address()..s.address() + s.size()).contains(&va)).expect("a segment");
    segment.data().expect("data")[(va - segment.address()) as usize]
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_violation_names_the_driver_s_line_not_the_library_s_wrapper() {
    if !kvm_or_skip("symbols: violation") {
        return;
    }
    let r: Run = run("aix-misuse-heap", &[]);
    r.expect_status(65);
    let double_free = &violations(&r)[0];
    assert_eq!(double_free["kind"], "aix.xmfree-double-free");
    // The RIP is the hypercall's `out dx, eax` itself, not the instruction after it.
    let rip = hex(&double_free["rip"]);
    assert_eq!(image_byte("aix-misuse-heap", rip), 0xef, "the byte at RIP {rip:#x} is the `out`");
    // The innermost frames are the library's wrapper; the site is the driver's call.
    let frames = double_free["frames"].as_array().expect("frames");
    assert_eq!(hex(&frames[0]["rip"]), rip);
    assert!(frames[0]["file"].as_str().is_some_and(|f| f.ends_with("guest/lib/src/hypercall.rs")), "{frames:#?}");
    let line = line_of("aix-misuse-heap", "(raw::xmfree(freed as u64, Heap::KERNEL.0).0, raw::xmfree(");
    expect_at(&double_free["location"], "aix-misuse-heap", "aix_misuse_heap::main", line);
    assert_ne!(double_free["location"]["rip"], double_free["rip"], "the site is the return address in main");
    let printed = format!(
        "violation on vCPU 0 at RIP {rip:#x} at aix_misuse_heap::main ({}:{line}), called from kmv_main (",
        double_free["location"]["file"].as_str().unwrap_or_default()
    );
    assert!(r.stderr.contains(&printed), "{printed}\n{}", r.stderr);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_exception_names_the_faulting_line() {
    if !kvm_or_skip("symbols: exception") {
        return;
    }
    let r = run("page-fault", &[]);
    r.expect_status(68);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "exception");
    let line = line_of("page-fault", "write_volatile(UNMAPPED as *mut u64");
    expect_at(&exit["location"], "page-fault", "page_fault::main", line);
    assert_eq!(exit["location"]["rip"], exit["rip"], "the faulting instruction");
    let frames = exit["frames"].as_array().expect("frames");
    assert_eq!(frames[0]["function"], "core::ptr::write_volatile", "the inlined function first: {frames:#?}");
    assert!(frames.iter().all(|f| f["file"].as_str().is_none_or(|f| !f.contains("vectors"))), "no handler frame: {frames:#?}");
    assert!(exit["summary"].as_str().is_some_and(|s| s.contains(&format!("page-fault.rs:{line}), called from kmv_main ("))));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_panic_names_the_line_of_the_panic() {
    if !kvm_or_skip("symbols: panic") {
        return;
    }
    let r = run("panic", &[]);
    r.expect_status(67);
    let exit = &r.report()["exit"];
    expect_at(&exit["location"], "panic", "panic::main", line_of("panic", "panic!(\"deliberate panic"));
    assert_eq!(exit["line"], exit["location"]["line"], "the DWARF agrees with the panic's own file:line");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_touch_of_a_hidden_page_names_the_touching_instruction() {
    if !kvm_or_skip("symbols: hidden-page touch") {
        return;
    }
    let r = run("xmem-touch", &["--vcpus", "2"]);
    r.expect_status(65);
    let touches: Vec<Value> = violations(&r).into_iter().filter(|v| v["kind"] == "hidden-page.touched").collect();
    assert_eq!(touches.len(), 7, "{touches:#?}");
    for touch in &touches {
        assert_ne!(hex(&touch["rip"]), 0, "{touch:#}");
        assert_eq!(touch["frames"][0]["rip"], touch["rip"], "{touch:#}");
        assert!(touch["location"]["file"].is_string() && touch["location"]["line"].is_u64(), "{touch:#}");
    }
    let line = line_of("xmem-touch", "read_volatile((page + LOAD_1) as *const u8)");
    expect_at(&touches[0]["location"], "xmem-touch", "xmem_touch::access", line);
    assert!(r.stderr.contains(&format!("xmem-touch.rs:{line}), called from xmem_touch::toucher (")), "{}", r.stderr);
}
