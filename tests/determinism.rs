//! Verdicts that repeat: device time and the serial schedule make the same
//! guest, options and seed give the same exit status, violations and
//! event-trace hash on every rerun, on one vCPU and on several; `--trace`
//! writes a Chrome trace; `kmemvisor replay` reruns a report.

mod common;

use std::collections::BTreeSet;

use common::{Run, kmemvisor, kvm_or_skip, run, violations};

/// (exit status, (kind, message) of every violation, trace hash).
fn verdict(r: &Run) -> (i32, Vec<(String, String)>, String) {
    let v = violations(r)
        .iter()
        .map(|v| (v["kind"].as_str().unwrap_or("").to_owned(), v["message"].as_str().unwrap_or("").to_owned()))
        .collect();
    (r.status, v, r.report()["determinism"]["trace"]["hash"].as_str().unwrap_or("").to_owned())
}

/// Runs `guest` with `options` under 10 seeds, 10 times each; every rerun of
/// a seed must give the seed's verdict. Returns the distinct trace hashes.
fn reruns(guest: &str, options: &[&str], guest_args: &[&str]) -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let traces = [dir.path().join("first.json"), dir.path().join("rerun.json")];
    let mut hashes = BTreeSet::new();
    for seed in 1..=10 {
        let seed = seed.to_string();
        let with_trace = |trace: &std::path::Path| {
            let mut args: Vec<&str> = options.to_vec();
            args.extend(["--seed", &seed, "--trace", trace.to_str().expect("utf-8"), "--"]);
            args.extend(guest_args);
            run(guest, &args)
        };
        let first = with_trace(&traces[0]);
        assert_eq!(first.report()["determinism"]["reproducible"], true, "{}", first.report()["determinism"]);
        let expected = verdict(&first);
        for rerun in 2..=10 {
            let again = with_trace(&traces[1]);
            if verdict(&again) != expected {
                panic!(
                    "{guest} {options:?} seed {seed}: rerun {rerun} differs: {:?} vs {:?}\n{}",
                    verdict(&again),
                    expected,
                    first_difference(&traces[0], &traces[1])
                );
            }
        }
        hashes.insert(expected.2);
    }
    hashes
}

/// The first events where two Chrome traces differ, with a few before.
fn first_difference(a: &std::path::Path, b: &std::path::Path) -> String {
    let events = |p: &std::path::Path| -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(p).expect("trace")).expect("JSON");
        doc["traceEvents"].as_array().expect("events").iter().map(|e| e.to_string()).collect()
    };
    let (a, b) = (events(a), events(b));
    let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let show = |v: &[String]| v[at.saturating_sub(3)..(at + 4).min(v.len())].join("\n  ");
    format!("first difference at event {at}:\n first run:\n  {}\n rerun:\n  {}", show(&a), show(&b))
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_racy_driver_on_one_vcpu_gets_the_same_verdict_on_every_rerun_of_a_seed() {
    if !kvm_or_skip("one vCPU reruns") {
        return;
    }
    // The transfer lands 0 to 3 exits after the doorbell: before or after the unhide.
    let hashes = reruns("dma-handoff", &["--dma-latency", "0", "--dma-jitter", "3"], &["aix-unhide-early"]);
    assert!(hashes.len() > 1, "the seeds should move the completion: {hashes:?}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn vcpus_racing_for_hidden_pages_get_the_same_verdict_on_every_rerun_of_a_seed() {
    if !kvm_or_skip("two vCPU reruns") {
        return;
    }
    reruns("xmem-touch", &["--vcpus", "2"], &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_seed_chooses_the_interleaving_of_several_vcpus() {
    if !kvm_or_skip("interleavings") {
        return;
    }
    let hashes: BTreeSet<String> = (1..=6)
        .map(|seed| {
            let r = run("smp", &["--vcpus", "3", "--pct-steps", "3000", "--seed", &seed.to_string()]);
            r.expect_status(0);
            assert_eq!(r.report()["determinism"]["schedule"], "serial");
            assert_eq!(r.report()["determinism"]["reproducible"], true);
            verdict(&r).2
        })
        .collect();
    assert!(hashes.len() > 1, "six seeds gave one interleaving: {hashes:?}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_parallel_run_says_its_verdict_may_not_repeat() {
    if !kvm_or_skip("parallel") {
        return;
    }
    let r = run("smp", &["--vcpus", "2", "--schedule", "parallel"]);
    r.expect_status(0);
    let d = &r.report()["determinism"];
    assert_eq!((d["schedule"].as_str(), d["reproducible"].as_bool()), (Some("parallel"), Some(false)));
    assert_eq!(d["timing_dependent"][0], "the vCPUs ran in parallel (--schedule parallel): the host ordered their exits");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_trace_file_is_chrome_trace_json_with_a_row_per_vcpu_and_dma_channel() {
    if !kvm_or_skip("trace") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace = dir.path().join("trace.json");
    let trace_arg = trace.to_str().expect("utf-8");
    let r = run("dma-handoff", &["--trace", trace_arg, "--", "aix-unhide-early"]);
    r.expect_status(65);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).expect("trace written")).expect("JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents array");
    let of = |cat: &str| events.iter().filter(|e| e["cat"] == cat).collect::<Vec<_>>();
    for e in events {
        for field in ["name", "ph", "pid", "tid"] {
            assert!(e.get(field).is_some(), "`{field}` missing: {e}");
        }
        assert!(["M", "X", "i"].contains(&e["ph"].as_str().unwrap_or("")), "{e}");
        if e["ph"] != "M" {
            assert!(e["ts"].is_u64(), "{e}");
        }
    }
    let calls = of("hypercall");
    assert_eq!(
        calls.len() as u64,
        r.report()["calls"].as_object().expect("calls").values().filter_map(|n| n.as_u64()).sum::<u64>()
    );
    let unhide = calls.iter().find(|e| e["name"] == "xmemdma" && e["args"]["status"] == 0).expect("an xmemdma");
    assert_eq!(unhide["tid"], 0);
    let transfers = of("dma");
    assert_eq!(transfers.len(), 1, "one transfer");
    assert_eq!((transfers[0]["tid"].as_u64(), transfers[0]["ph"].as_str()), (Some(100), Some("X")));
    assert_eq!(transfers[0]["args"]["length"], 4096);
    let hides: Vec<&str> = of("hidden-page").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(hides, ["hide", "unhide"], "the page handed off, then back");
    let violations = of("violation");
    assert_eq!(violations.len(), 2, "the unhide and the transfer");
    let rows: Vec<&str> = events.iter().filter(|e| e["ph"] == "M").filter_map(|e| e["args"]["name"].as_str()).collect();
    assert!(rows.contains(&"vCPU 0") && rows.contains(&"DMA channel 0"), "{rows:?}");
    assert_eq!(r.report()["determinism"]["trace"]["events"].as_u64(), Some((events.len() - rows.len()) as u64));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn replay_reruns_a_report_and_refuses_what_cannot_be_replayed() {
    if !kvm_or_skip("replay") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("report.json");
    let report_arg = report.to_str().expect("utf-8");
    let first = kmemvisor(&["run", "xmem-touch", "--vcpus", "2", "--seed", "4", "--report", report_arg]);
    assert_eq!(first.status, 65, "{}", first.stderr);
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(recorded["invocation"]["options"]["seed"][0], "4");
    assert_eq!(recorded["invocation"]["options"]["dma_latency"][0], "1", "defaults are recorded too");

    let replay = kmemvisor(&["replay", report_arg]);
    assert_eq!(replay.status, 0, "{}", replay.stderr);
    assert!(replay.stderr.contains("kmemvisor: replay: same exit status 65"), "{}", replay.stderr);
    assert!(replay.stderr.contains("kmemvisor: replay: the run replayed exactly"), "{}", replay.stderr);

    // Another version's report.
    let mut other = recorded.clone();
    other["kmemvisor_version"] = "0.0.1".into();
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).expect("write");
    let r = kmemvisor(&["replay", other_path.to_str().expect("utf-8")]);
    assert_eq!(r.status, 64, "{}", r.stderr);
    assert!(r.stderr.contains("was written by kmemvisor 0.0.1"), "{}", r.stderr);

    // A guest file that changed since.
    let guest = dir.path().join("guest.elf");
    let elf = dir.path().join("hello-report.json");
    std::fs::write(&guest, kmemvisor::guests::find("hello").expect("bundled").elf).expect("write the hello guest");
    let guest_arg = guest.to_str().expect("utf-8");
    let ran = kmemvisor(&["run", guest_arg, "--report", elf.to_str().expect("utf-8")]);
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    let mut bytes = std::fs::read(&guest).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&guest, bytes).expect("change the guest");
    let r = kmemvisor(&["replay", elf.to_str().expect("utf-8")]);
    assert_eq!(r.status, 64, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("`{guest_arg}` changed since the report")), "{}", r.stderr);

    // Not a report.
    let r = kmemvisor(&["replay", guest_arg]);
    assert_eq!(r.status, 64);
    assert!(r.stderr.contains("is not a kmemvisor report: not JSON"), "{}", r.stderr);
}
