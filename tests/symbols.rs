//! Symbolised diagnostics under real KVM: violations, exceptions, panics and
//! touches of hidden pages name the guest's function and file:line, read
//! from the guest's DWARF, in the report (`location`, `frames`) and on stderr.

mod common;

use common::{Run, kvm_or_skip, line_of, run, violations};
use object::{Object, ObjectSegment};
use serde_json::Value;

/// The source of bundled guest program `name`.
fn source_path(name: &str) -> String {
    format!("guest/programs/src/bin/{name}.rs")
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
fn a_leak_found_at_exit_names_the_driver_s_get_not_the_wrapper() {
    if !kvm_or_skip("symbols: leak") {
        return;
    }
    let r: Run = run("dgux-leak", &[]);
    r.expect_status(65);
    let leaks: Vec<Value> = violations(&r).into_iter().filter(|v| v["kind"] == "leak.dgux-allocation").collect();
    assert_eq!(leaks.len(), 2, "{:#?}", violations(&r));
    let wired = line_of("dgux-leak", "let wired = vm_get_wired_memory(");
    let unwired = line_of("dgux-leak", "let unwired = vm_get_unwired_memory(");
    expect_at(&leaks[0]["location"], "dgux-leak", "dgux_leak::main", wired);
    expect_at(&leaks[1]["location"], "dgux-leak", "dgux_leak::main", unwired);
    // An xmalloc's leak too.
    let r: Run = run("aix-misuse-heap", &[]);
    let leak = violations(&r).into_iter().find(|v| v["kind"] == "leak.xmalloc").expect("the xmalloc leak");
    assert_eq!(leak["location"]["function"], "aix_misuse_heap::main", "{leak:#}");
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

/// A C driver with a double free in a helper and a fault in `main`.
const C_DRIVER: &str = r#"#include <kmemvisor.h>

static int release_twice(caddr_t p)
{
    xmfree(p, kernel_heap);
    return xmfree(p, kernel_heap); /* SECOND FREE */
}

int main(int argc, char **argv)
{
    caddr_t p = xmalloc(64, 3, kernel_heap);
    if (argc > 1)
        *(volatile unsigned long *)0xdead0000ul = 1; /* FAULT */
    printf("again: %d\n", release_twice(p)); /* CALL */
    return 0;
}
"#;

fn c_line(marker: &str) -> u64 {
    C_DRIVER.lines().position(|line| line.contains(marker)).expect("marker") as u64 + 1
}

fn expect_c_at(location: &Value, function: &str, line: u64) {
    assert!(location["file"].as_str().is_some_and(|f| f.ends_with("/driver.c")), "{location:#}");
    assert_eq!((&location["function"], &location["line"]), (&Value::from(function), &Value::from(line)), "{location:#}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_c_driver_s_violation_and_fault_name_its_lines() {
    if !kvm_or_skip("symbols: C driver") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("driver.c"), C_DRIVER).expect("write driver.c");
    let built = std::process::Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .args(["cc", "-O2", "driver.c", "-o", "driver.elf"])
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .expect("kmemvisor cc runs");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let elf = dir.path().join("driver.elf").display().to_string();

    let r = run(&elf, &[]);
    r.expect_status(65);
    let double_free = &violations(&r)[0];
    assert_eq!(double_free["kind"], "aix.xmfree-double-free");
    // The runtime's `xmfree` has no frame of its own (a leaf): its caller comes from RSP.
    expect_c_at(&double_free["location"], "release_twice", c_line("SECOND FREE"));
    let frames = double_free["frames"].as_array().expect("frames");
    let main = frames.iter().find(|f| f["function"] == "main").expect("main's frame");
    expect_c_at(main, "main", c_line("CALL"));
    assert!(r.stderr.contains(&format!("driver.c:{}), called from main (", c_line("SECOND FREE"))), "{}", r.stderr);

    let r = run(&elf, &["--", "fault"]);
    r.expect_status(68);
    expect_c_at(&r.report()["exit"]["location"], "main", c_line("FAULT"));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_transfer_into_a_page_not_handed_off_names_the_driver_s_doorbell() {
    if !kvm_or_skip("symbols: doorbell") {
        return;
    }
    let r: Run = run("dma-handoff", &["--", "aix-unhide-early"]);
    r.expect_status(65);
    let transfer = violations(&r).into_iter().find(|v| v["kind"] == "dma.page-not-handed-off").expect("the transfer");
    // KVM completes the doorbell's store before it exits: RIP is past it,
    // and the line is the store's, the engine library's register write
    // inlined into the driver.
    let rip = hex(&transfer["rip"]);
    assert_eq!(hex(&transfer["location"]["rip"]), rip - 1, "{transfer:#}");
    let doorbell = line_of("dma-handoff", "unsafe { engine.start(engine.channel(0), 0, real, PAGE, DIR_FROM_DEVICE) }");
    expect_at(&transfer["location"], "dma-handoff", "dma_handoff::start", doorbell);
}
