//! AIX virtual memory manager services under real KVM: the conformance
//! guest (the `as_*64` services in a process included), the misuse guest
//! and its exact violations, a store to a page
//! `vm_protectp` made read-only, the halt of a `vm_att` with no free region,
//! and the C SDK's calls in the C conformance guest.

mod common;

use common::{expect_conformance, kvm_or_skip, printed_address, run, violations};
use kmemvisor_abi::{Service, ServiceGroup, layout};

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_conformance_guest_passes_every_case_without_a_violation() {
    if !kvm_or_skip("aix-vmm") {
        return;
    }
    let r = run("aix-vmm", &[]);
    expect_conformance(&r, include_str!("conformance/aix-vmm.txt"));
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    assert_eq!(r.report()["exit"]["cause"], "guest-exit");
    for service in Service::ALL.iter().filter(|s| s.group() == ServiceGroup::AixVirtualMemory) {
        assert!(r.calls(service.name()) > 0, "{} never called", service.name());
    }
    // Eight pages written to a device, each left in (no --memory-limit
    // takes them out): nothing comes back, nothing is evicted.
    let pager = &r.report()["pager"];
    let counts = ["page_outs", "page_ins", "clean_evictions"].map(|c| pager[c].as_u64());
    assert_eq!(counts, [Some(8), Some(0), Some(0)], "{pager}");
    assert_eq!((pager["io_errors"].as_u64(), pager["injected_pagein_failures"].as_u64()), (Some(0), Some(0)));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn each_misuse_is_refused_and_is_one_violation() {
    if !kvm_or_skip("aix-vmm-misuse") {
        return;
    }
    let r = run("aix-vmm-misuse", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("16 misuses made, each refused"), "{}", r.stdout);
    let at = printed_address(&r.stdout, "attached at ");
    assert_eq!(at, layout::vm_region_va(0));
    let v = violations(&r);
    let seen: Vec<(&str, &str)> =
        v.iter().map(|v| (v["service"].as_str().unwrap_or(""), v["kind"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        seen,
        [
            ("vms_delete", "vmm.deleted-object"),
            ("vm_att", "vmm.bad-handle"),
            ("vms_delete", "vmm.delete-attached"),
            ("vm_det", "vmm.detach-not-attached"),
            ("io_det", "vmm.detach-not-attached"),
            ("io_att", "vmm.bad-io-handle"),
            ("vm_cflush", "vmm.cflush-not-kernel"),
            ("vm_makep", "vmm.at-interrupt-level"),
            ("vm_releasep", "aix.free-pinned"),
            ("as_puth64", "vmm.puth-without-geth"),
            ("as_puth64", "vmm.puth-while-attached"),
            ("vms_delete", "vmm.delete-held"),
            ("vm_move", "vmm.deleted-object"),
            ("as_att", "vmm.bad-adspace"),
            ("as_geth", "vmm.unmapped-address"),
            ("as_puth", "vmm.puth-without-geth"),
        ]
    );
    let user = printed_address(&r.stdout, "in process 1 at ");
    assert_eq!(user, layout::USER_REGIONS_VA);
    assert_eq!(v[9]["args"][0], format!("{user:#x}"));
    assert_eq!(v[3]["args"][0], format!("{:#x}", at + layout::VM_REGION_SIZE));
    assert!(v[4]["message"].as_str().is_some_and(|m| m.contains("mapped by vm_att")), "{}", v[4]);
    let adsp = printed_address(&r.stdout, "address space is ");
    assert_eq!(adsp, kmemvisor_abi::aix_vmm::adspace(1));
    assert_eq!(v[13]["args"][0], format!("{:#x}", adsp ^ 1));
    assert_eq!((&v[14]["args"][0], &v[14]["args"][1]), (&format!("{adsp:#x}").into(), &format!("{user:#x}").into()));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_store_to_a_read_only_object_page_faults_even_after_a_writable_store() {
    if !kvm_or_skip("aix-vmm-protect") {
        return;
    }
    let r = run("aix-vmm-protect", &[]);
    r.expect_status(68);
    assert!(r.stdout.contains("read-only (OK), reads 1; storing to it"), "{}", r.stdout);
    let exit = &r.report()["exit"];
    assert_eq!((exit["cause"].as_str(), exit["name"].as_str()), (Some("exception"), Some("#PF")));
    assert_eq!(exit["cr2"], format!("{:#x}", layout::vm_region_va(0)));
    assert_eq!(exit["error_code"], "0x7", "present, write, user: a protection fault");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_vm_att_with_every_region_in_use_halts_the_vm() {
    if !kvm_or_skip("aix-vmm-halt") {
        return;
    }
    let r = run("aix-vmm-halt", &[]);
    r.expect_status(76);
    assert!(r.stdout.contains(&format!("region 15 at {:#x}", layout::vm_region_va(15))), "{}", r.stdout);
    let exit = &r.report()["exit"];
    assert_eq!((exit["cause"].as_str(), exit["service"].as_str()), (Some("aix-halt"), Some("vm_att")));
    assert!(r.stderr.contains("vm_att on vCPU 0 halted the kernel: all 16 regions are in use"), "{}", r.stderr);
    assert_eq!(violations(&r).len(), 0);
}

/// The C conformance guest's virtual memory cases, in order, through the C
/// SDK's prototypes.
const C_VMM_CASES: &str = "PASS: vms_create of two pages: 0 and a vmid
PASS: vm_att of its handle: a region of zeroed pages
PASS: vm_qmodify of a new object: FALSE
PASS: a store through the region: vm_qmodify TRUE
PASS: vm_move reads the stored byte back without a mapping
PASS: vms_delete once detached: 0
";

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_c_sdk_creates_attaches_stores_queries_and_deletes_an_object() {
    if !kvm_or_skip("c-conformance") {
        return;
    }
    let r = run("c-conformance", &[]);
    r.expect_status(0);
    assert!(r.stdout.contains(C_VMM_CASES), "{}", r.stdout);
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    for service in ["vms_create", "vm_handle", "vm_att", "vm_qmodify", "vm_det", "vm_move", "vms_delete"] {
        assert_eq!(r.calls(service), if service == "vm_qmodify" { 2 } else { 1 }, "{service}");
    }
}
