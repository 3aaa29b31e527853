//! Snapshot reset under real KVM: an iteration on a persistent VM gives the
//! report of a fresh `kmemvisor run … --seed S --input FILE`, and after a
//! restore nothing of the iterations before is left — not in guest RAM, not
//! in the vCPUs, not in the VMM state — whichever way the restore finds
//! the pages to put back (every page held, or KVM's dirty log with the
//! VMM's record of its own writes).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{kvm_or_skip, run};
use kmemvisor::snapshot::dirty::DirtyPages;
use kmemvisor::snapshot::persistent::{PersistentVm, SnapshotPoint};
use kmemvisor::state::VmConfig;

fn boot(guest: &str, config: VmConfig) -> PersistentVm {
    let elf = kmemvisor::guests::find(guest).expect("bundled guest").elf;
    PersistentVm::boot(guest, elf, config, Some(Duration::from_secs(20))).expect("persistent VM")
}

/// What decides a verdict in a report: the exit, the violations, the calls,
/// the DG/UX summary and the event trace.
fn verdict(report: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "exit": report["exit"],
        "violations": report["violations"],
        "calls": report["calls"],
        "dgux": report["dgux"],
        "trace": report["determinism"]["trace"],
        "scheduling_points": report["determinism"]["scheduling_points"],
    })
}

/// The input of iteration `i`.
fn input(i: u64) -> Vec<u8> {
    (0..(i % 5) * 7).map(|b| (b as u8).wrapping_mul(i as u8 + 3)).collect()
}

/// Iterations of `guest` with `args` against fresh processes, seeds
/// 1..=runs; the pages of every other iteration are logged.
fn iterations_are_fresh_runs(guest: &str, config: VmConfig, args: &[&str], runs: u64, point: SnapshotPoint) {
    let mut vm = boot(guest, config);
    let dir = tempfile::tempdir().expect("temporary directory");
    for seed in 1..=runs {
        let bytes = input(seed);
        vm.track_dirty_pages(if seed % 2 == 0 { DirtyPages::Logged } else { DirtyPages::Held });
        let file = dir.path().join(format!("input-{seed}"));
        std::fs::write(&file, &bytes).expect("input file");
        let mut report = vm.run(seed, Arc::from(bytes)).expect("iteration").report;
        // Places, as `kmemvisor run` looks them up for its report.
        report.locate(&[kmemvisor::guests::find(guest).expect("bundled guest").elf]);
        let iteration = serde_json::to_value(&report).expect("JSON");
        let seed_arg = seed.to_string();
        let file_arg = file.to_str().expect("utf-8");
        let fresh = run(guest, &[&["--seed", &seed_arg, "--input", file_arg][..], args].concat());
        let fresh = fresh.report.expect("fresh report");
        let (iteration, fresh) = (verdict(&iteration), verdict(&fresh));
        for key in ["exit", "violations", "calls", "dgux", "trace", "scheduling_points"] {
            assert_eq!(iteration[key], fresh[key], "{guest} {args:?} seed {seed}: {key}");
        }
        assert_eq!(*vm.point(), point);
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_iteration_from_the_guests_snapshot_point_is_the_fresh_run_with_its_seed_and_input() {
    if !kvm_or_skip("snapshot fuzz-dirty") {
        return;
    }
    iterations_are_fresh_runs("fuzz-dirty", VmConfig::default(), &[], 12, SnapshotPoint::Guest);
    let two = VmConfig { vcpus: 2, ..VmConfig::default() };
    iterations_are_fresh_runs("fuzz-dirty", two, &["--vcpus", "2"], 12, SnapshotPoint::Guest);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_iteration_from_the_first_instruction_is_the_fresh_run_of_a_racy_driver() {
    if !kvm_or_skip("snapshot dma-handoff") {
        return;
    }
    let mut config = VmConfig { cmdline: "aix-unhide-early".into(), ..VmConfig::default() };
    config.dma.latency = 0;
    config.dma.jitter = 3;
    let args = ["--dma-latency", "0", "--dma-jitter", "3", "--", "aix-unhide-early"];
    iterations_are_fresh_runs("dma-handoff", config, &args, 16, SnapshotPoint::FirstInstruction(None));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn after_a_restore_nothing_of_the_iterations_is_left() {
    if !kvm_or_skip("snapshot restore") {
        return;
    }
    for (vcpus, way) in [(1, DirtyPages::Held), (2, DirtyPages::Held), (1, DirtyPages::Logged), (2, DirtyPages::Logged)] {
        let mut vm = boot("fuzz-dirty", VmConfig { vcpus, ..VmConfig::default() });
        vm.track_dirty_pages(way);
        // The first iteration takes the snapshot at fuzz_snapshot, under seed 5.
        vm.run(5, Arc::from(&b"first"[..])).expect("iteration");
        assert_eq!(*vm.point(), SnapshotPoint::Guest);
        for seed in 6..12 {
            let report = vm.run(seed, Arc::from(input(seed))).expect("iteration").report;
            assert_eq!(vm.tracked(), way);
            // The guest exits 3 if its iteration counter survived a restore.
            assert_ne!(report.exit.status, 3, "seed {seed}: {:?}", report.exit);
            assert!(!report.violations.is_empty(), "its leaks");
            vm.restore(5).expect("restore");
            assert_eq!(vm.differences().expect("compare"), Vec::<String>::new(), "{vcpus} vCPU(s), {way:?}, after seed {seed}");
        }
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn pages_only_the_vmm_wrote_are_put_back_when_the_vcpus_pages_come_from_kvm_s_dirty_log() {
    if !kvm_or_skip("snapshot VMM writes") {
        return;
    }
    // The DMA engine writes the driver's buffer; the vCPUs only read it.
    let mut config = VmConfig { cmdline: "aix-correct".into(), ..VmConfig::default() };
    config.dma.latency = 0;
    let mut vm = boot("dma-handoff", config);
    vm.track_dirty_pages(DirtyPages::Logged);
    vm.run(1, Arc::from(&b""[..])).expect("first iteration");
    for seed in 2..6 {
        let report = vm.run(seed, Arc::from(&b""[..])).expect("iteration").report;
        assert_eq!(report.exit.status, 0, "seed {seed}: {:?}", report.exit);
        vm.restore(1).expect("restore");
        let reset = vm.last_reset();
        assert!(reset.vmm_only > 0, "seed {seed}: the DMA engine's pages are not in KVM's log: {reset:?}");
        assert_eq!(vm.differences().expect("compare"), Vec::<String>::new(), "after seed {seed}");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_persistent_vm_measures_both_ways_then_keeps_one() {
    if !kvm_or_skip("snapshot dirty-page choice") {
        return;
    }
    let mut vm = boot("fuzz-dirty", VmConfig::default());
    let mut ways = Vec::new();
    for seed in 1..=40 {
        let report = vm.run(seed, Arc::from(input(seed))).expect("iteration").report;
        assert_ne!(report.exit.status, 3, "seed {seed}: {:?}", report.exit);
        ways.push(vm.tracked());
    }
    assert!(ways[..33].contains(&DirtyPages::Logged) && ways[..33].contains(&DirtyPages::Held), "{ways:?}");
    assert!(ways[33..].iter().all(|&w| w == ways[39]), "one way once measured: {ways:?}");
}
