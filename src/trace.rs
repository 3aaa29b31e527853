//! The run's event trace: every event the VMM handled that can decide a
//! verdict — exits with their outcome, DMA transfers, stalls on hidden pages
//! and their release, preemptions, violations — in the order it handled
//! them, stamped with device time (exits so far).
//!
//! Every event goes into one running hash: two runs with the same hash saw
//! the same events in the same order, which is what "the same seed gives the
//! same run" means and what `kmemvisor replay` compares. With `--trace FILE`
//! the events are also kept and written as Chrome trace-event JSON, which
//! Perfetto and chrome://tracing show as one timeline per vCPU and per DMA
//! channel, one exit of device time per microsecond of the timeline.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::coverage::Coverage;
use crate::sync::lock;

/// The timeline row of DMA channel 0; channel n is `DMA_TRACK + n`.
const DMA_TRACK: u64 = 100;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A hypercall and its reply.
    Hypercall {
        /// The vCPU.
        vcpu: usize,
        /// The service number (rax).
        number: u64,
        /// The service's name, or `unknown`.
        name: &'static str,
        /// The status replied, if the call returned.
        status: Option<u64>,
        /// The value replied.
        value: u64,
    },
    /// Any other exit: a port or MMIO access.
    Access {
        /// The vCPU.
        vcpu: usize,
        /// `port-out`, `port-in`, `mmio-read`, `mmio-write`, …
        what: &'static str,
        /// The port or guest-physical address.
        at: u64,
        /// The value written or read (0 when none).
        value: u64,
    },
    /// A DMA transfer ran (or failed its checks) on `channel`.
    Transfer {
        /// The channel.
        channel: usize,
        /// Device time of its doorbell.
        rung: u64,
        /// 0, or the `ERROR_*` code.
        error: u64,
        /// Its source, destination, length and direction registers.
        registers: [u64; 4],
    },
    /// Pages handed to the device (`xmemdma` `XMEM_HIDE`) or back.
    Hide {
        /// The vCPU.
        vcpu: usize,
        /// Hidden (true) or handed back.
        hide: bool,
        /// The guest-physical frames.
        frames: Vec<u64>,
    },
    /// A vCPU touched a hidden page and waits.
    Stall {
        /// The vCPU.
        vcpu: usize,
        /// The guest-physical page.
        page: u64,
    },
    /// A stalled vCPU's page came back.
    Release {
        /// The vCPU.
        vcpu: usize,
        /// The guest-physical page.
        page: u64,
    },
    /// The spin fallback took the turn from a vCPU that made no exit.
    Preemption {
        /// The vCPU.
        vcpu: usize,
    },
    /// A device interrupt was injected into a vCPU.
    Interrupt {
        /// The vCPU.
        vcpu: usize,
    },
    /// A violation was recorded.
    Violation {
        /// The vCPU.
        vcpu: usize,
        /// The service or access concerned.
        service: String,
    },
}

impl Event {
    /// The event's fields as bytes for the hash: a tag, then each number.
    fn hash_into(&self, hash: &mut Fnv) {
        match self {
            Event::Hypercall { vcpu, number, status, value, .. } => {
                hash.tag(1).num(*vcpu as u64).num(*number).num(status.map_or(u64::MAX, |s| s)).num(*value)
            }
            Event::Access { vcpu, what, at, value } => hash.tag(2).num(*vcpu as u64).bytes(what.as_bytes()).num(*at).num(*value),
            Event::Transfer { channel, rung, error, registers } => {
                let hash = hash.tag(3).num(*channel as u64).num(*rung).num(*error);
                registers.iter().fold(hash, |h, r| h.num(*r))
            }
            Event::Hide { vcpu, hide, frames } => {
                let hash = hash.tag(9).num(*vcpu as u64).num(u64::from(*hide)).num(frames.len() as u64);
                frames.iter().fold(hash, |h, f| h.num(*f))
            }
            Event::Stall { vcpu, page } => hash.tag(4).num(*vcpu as u64).num(*page),
            Event::Release { vcpu, page } => hash.tag(5).num(*vcpu as u64).num(*page),
            Event::Preemption { vcpu } => hash.tag(6).num(*vcpu as u64),
            Event::Violation { vcpu, service } => hash.tag(7).num(*vcpu as u64).bytes(service.as_bytes()),
            Event::Interrupt { vcpu } => hash.tag(8).num(*vcpu as u64),
        };
    }

    /// The Chrome trace event for this event at device time `at`.
    fn chrome(&self, at: u64) -> ChromeEvent {
        let instant = |name: String, cat: &'static str, tid: u64, args: serde_json::Value| ChromeEvent {
            name,
            cat,
            ph: "i",
            ts: at,
            dur: None,
            pid: 1,
            tid,
            s: Some("t"),
            args,
        };
        match self {
            Event::Hypercall { vcpu, number, name, status, value } => ChromeEvent {
                name: (*name).to_owned(),
                cat: "hypercall",
                ph: "X",
                ts: at,
                dur: Some(1),
                pid: 1,
                tid: *vcpu as u64,
                s: None,
                args: serde_json::json!({ "number": number, "status": status, "value": format!("{value:#x}") }),
            },
            Event::Access { vcpu, what, at: address, value } => instant(
                (*what).to_owned(),
                "access",
                *vcpu as u64,
                serde_json::json!({ "at": format!("{address:#x}"), "value": format!("{value:#x}") }),
            ),
            Event::Hide { vcpu, hide, frames } => instant(
                if *hide { "hide".into() } else { "unhide".into() },
                "hidden-page",
                *vcpu as u64,
                serde_json::json!({ "frames": frames.iter().map(|f| format!("{f:#x}")).collect::<Vec<_>>() }),
            ),
            Event::Transfer { channel, rung, error, registers } => ChromeEvent {
                name: if *error == 0 { "transfer".to_owned() } else { format!("transfer failed ({error})") },
                cat: "dma",
                ph: "X",
                ts: *rung,
                dur: Some(at.saturating_sub(*rung).max(1)),
                pid: 1,
                tid: DMA_TRACK + *channel as u64,
                s: None,
                args: serde_json::json!({
                    "channel": channel,
                    "error": error,
                    "source": format!("{:#x}", registers[0]),
                    "destination": format!("{:#x}", registers[1]),
                    "length": registers[2],
                    "direction": registers[3],
                }),
            },
            Event::Stall { vcpu, page } => {
                instant("stall".into(), "hidden-page", *vcpu as u64, serde_json::json!({ "page": format!("{page:#x}") }))
            }
            Event::Release { vcpu, page } => {
                instant("release".into(), "hidden-page", *vcpu as u64, serde_json::json!({ "page": format!("{page:#x}") }))
            }
            Event::Preemption { vcpu } => instant("preemption".into(), "schedule", *vcpu as u64, serde_json::json!({})),
            Event::Violation { vcpu, service } => {
                instant(format!("violation: {service}"), "violation", *vcpu as u64, serde_json::json!({ "service": service }))
            }
            Event::Interrupt { vcpu } => instant("interrupt".into(), "interrupt", *vcpu as u64, serde_json::json!({})),
        }
    }
}

/// The FNV-1a hash of `bytes`, as the report shows it (`0x` and 16 hex
/// digits): enough to tell that a guest or module file changed.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hash = Fnv(FNV_OFFSET);
    hash.bytes(bytes);
    format!("{:#018x}", hash.0)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, over bytes for text and over whole words for numbers:
/// small, stable across versions and platforms.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) -> &mut Fnv {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        // The length ends the field, so that fields cannot run into each other.
        self.num_raw(bytes.len() as u64)
    }

    fn num_raw(&mut self, n: u64) -> &mut Fnv {
        // A whole word per step, not FNV's byte: the trace hashes every exit,
        // and equal traces are all it must tell; the rotation spreads the
        // high bits the multiply leaves behind.
        self.0 = (self.0 ^ n).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
        self
    }

    fn num(&mut self, n: u64) -> &mut Fnv {
        self.num_raw(n)
    }

    fn tag(&mut self, tag: u8) -> &mut Fnv {
        self.num_raw(u64::from(tag))
    }
}

/// One event of the Chrome trace-event format.
#[derive(Debug, Serialize)]
struct ChromeEvent {
    name: String,
    cat: &'static str,
    ph: &'static str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<u64>,
    pid: u32,
    tid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    args: serde_json::Value,
}

#[derive(Clone, Debug)]
struct Inner {
    hash: Fnv,
    count: u64,
    kept: Option<Vec<(u64, Event)>>,
    coverage: Option<Coverage>,
}

impl std::fmt::Debug for Fnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

/// The run's trace.
#[derive(Debug)]
pub struct EventTrace {
    inner: Mutex<Inner>,
}

impl Clone for EventTrace {
    fn clone(&self) -> EventTrace {
        EventTrace { inner: Mutex::new(lock(&self.inner).clone()) }
    }
}

/// What the report says of the trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceSummary {
    /// Events recorded.
    pub events: u64,
    /// Their hash, `0x` and 16 hex digits.
    pub hash: String,
}

impl EventTrace {
    /// An empty trace; `keep` keeps the events for [`EventTrace::write_chrome`],
    /// `cover` counts their edges for [`EventTrace::features`].
    pub fn new(keep: bool, cover: bool) -> EventTrace {
        let inner = Inner { hash: Fnv(FNV_OFFSET), count: 0, kept: keep.then(Vec::new), coverage: cover.then(Coverage::default) };
        EventTrace { inner: Mutex::new(inner) }
    }

    /// Records `event` at device time `at`.
    pub fn record(&self, at: u64, event: Event) {
        let mut inner = lock(&self.inner);
        inner.hash.num(at);
        event.hash_into(&mut inner.hash);
        inner.count += 1;
        if let Some(coverage) = &mut inner.coverage {
            coverage.record(&event);
        }
        if let Some(kept) = &mut inner.kept {
            kept.push((at, event));
        }
    }

    /// The features of the events so far ([`crate::coverage`]); empty when
    /// the trace does not count them.
    pub fn features(&self) -> Vec<u64> {
        lock(&self.inner).coverage.as_ref().map(Coverage::features).unwrap_or_default()
    }

    /// The count and hash so far.
    pub fn summary(&self) -> TraceSummary {
        let inner = lock(&self.inner);
        TraceSummary { events: inner.count, hash: format!("{:#018x}", inner.hash.0) }
    }

    /// Writes the kept events as Chrome trace-event JSON, with a name for
    /// every vCPU and DMA channel row.
    pub fn write_chrome(&self, out: &mut dyn Write, vcpus: usize, channels: usize) -> std::io::Result<()> {
        let inner = lock(&self.inner);
        let mut events: Vec<serde_json::Value> = Vec::new();
        let name = |tid: u64, name: String| serde_json::json!({ "name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": { "name": name } });
        events.push(serde_json::json!({ "name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": { "name": "kmemvisor (1 µs = 1 exit of device time)" } }));
        events.extend((0..vcpus).map(|v| name(v as u64, format!("vCPU {v}"))));
        events.extend((0..channels).map(|c| name(DMA_TRACK + c as u64, format!("DMA channel {c}"))));
        for (at, event) in inner.kept.iter().flatten() {
            events.push(serde_json::to_value(event.chrome(*at)).map_err(std::io::Error::other)?);
        }
        let document = serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ns" });
        serde_json::to_writer(&mut *out, &document).map_err(std::io::Error::other)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(trace: &EventTrace) {
        trace.record(1, Event::Hypercall { vcpu: 0, number: 0x600, name: "vm_get_wired_memory", status: Some(0), value: 0x1000 });
        trace.record(2, Event::Access { vcpu: 1, what: "mmio-write", at: 0xd000_0028, value: 1 });
        trace.record(3, Event::Transfer { channel: 2, rung: 2, error: 0, registers: [0x1000, 0x2000, 0x40, 3] });
        trace.record(3, Event::Hide { vcpu: 0, hide: true, frames: vec![0x5000] });
        trace.record(3, Event::Stall { vcpu: 1, page: 0x5000 });
        trace.record(4, Event::Release { vcpu: 1, page: 0x5000 });
        trace.record(4, Event::Preemption { vcpu: 0 });
        trace.record(5, Event::Violation { vcpu: 0, service: "dma".into() });
        trace.record(6, Event::Interrupt { vcpu: 0 });
    }

    #[test]
    fn the_same_events_give_the_same_hash_and_any_change_another() {
        let (a, b) = (EventTrace::new(false, false), EventTrace::new(true, false));
        sample(&a);
        sample(&b);
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.summary().events, 9);
        let c = EventTrace::new(false, false);
        sample(&c);
        c.record(6, Event::Preemption { vcpu: 0 });
        assert_ne!(c.summary().hash, a.summary().hash);
        let d = EventTrace::new(false, false);
        d.record(1, Event::Preemption { vcpu: 1 });
        let e = EventTrace::new(false, false);
        e.record(2, Event::Preemption { vcpu: 1 });
        assert_ne!(d.summary().hash, e.summary().hash, "device time counts");
        assert_eq!(EventTrace::new(false, false).summary().hash, "0xcbf29ce484222325");
    }

    #[test]
    fn content_hashes_tell_files_apart() {
        assert_eq!(content_hash(b"guest"), content_hash(b"guest"));
        assert_ne!(content_hash(b"guest"), content_hash(b"guesT"));
        assert_eq!(content_hash(b"").len(), 18);
    }

    #[test]
    fn the_chrome_trace_has_the_formats_fields_and_a_row_per_vcpu_and_channel() {
        let trace = EventTrace::new(true, false);
        sample(&trace);
        let mut out = Vec::new();
        trace.write_chrome(&mut out, 2, 8).expect("write");
        let doc: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        let events = doc["traceEvents"].as_array().expect("traceEvents");
        assert_eq!(events.len(), 1 + 2 + 8 + 9);
        for e in events {
            for field in ["name", "ph", "pid", "tid"] {
                assert!(e.get(field).is_some(), "{field} missing from {e}");
            }
            match e["ph"].as_str() {
                Some("M") => {}
                Some("X") => assert!(e["ts"].is_u64() && e["dur"].as_u64().is_some_and(|d| d > 0), "{e}"),
                Some("i") => assert!(e["ts"].is_u64() && e["s"] == "t", "{e}"),
                other => panic!("phase {other:?}"),
            }
        }
        let transfer = events.iter().find(|e| e["cat"] == "dma").expect("transfer");
        assert_eq!((transfer["tid"].as_u64(), transfer["ts"].as_u64(), transfer["dur"].as_u64()), (Some(102), Some(2), Some(1)));
        let names: Vec<&str> = events.iter().filter(|e| e["ph"] == "M").filter_map(|e| e["args"]["name"].as_str()).collect();
        assert!(names.contains(&"vCPU 1") && names.contains(&"DMA channel 7"), "{names:?}");
    }
}
