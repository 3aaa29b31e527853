//! Symbolised diagnostics: where in the guest's source a violation, an
//! exception or a panic happened.
//!
//! When a violation is recorded, the vCPU's stack is captured as plain
//! addresses ([`stack::capture`]: the instruction, then the return address
//! of each frame found by following the frame pointers). Nothing is looked
//! up then: the guest's DWARF is read once, when the report is written
//! ([`Symbols`]), and every address becomes a [`Location`]. The *site* of a
//! report is the first frame whose function belongs to the guest's own code
//! rather than to the support code around it (the guest library, the
//! firmware, the module runtime, Rust's `core` and `alloc`), so that a
//! driver's violation names the driver's line, not the library's wrapper
//! that made the hypercall.

mod dwarf;
pub mod stack;

use std::fmt;

use serde::Serialize;

pub use dwarf::Symbols;

/// Crates whose functions are support code, not the code under test: the
/// site is the first frame outside them. Told by the demangled function name
/// (`kmemvisor_guest::aix::xmfree`), which names the crate the function was
/// written in wherever it was built; `__rustc::` is the symbol the panic
/// handler is given.
const SUPPORT_CRATES: &[&str] = &[
    "kmemvisor_guest::",
    "kmemvisor_firmware::",
    "kmemvisor_modules::",
    "core::",
    "alloc::",
    "compiler_builtins::",
    "__rustc::",
];

/// Source directories of support code, for the functions whose names do not
/// say their crate: the `#[no_mangle]` functions of the firmware (`kmv_main`,
/// which its `entry!` macro writes into the program) and of the library,
/// Rust's own library (built under `/rustc/`), and the C SDK: its runtime
/// (compiled with its directory mapped to `kmemvisor-sdk/`) and the inline
/// functions of its headers (`include/kmemvisor/`, wherever installed).
const SUPPORT_SOURCES: &[&str] =
    &["/firmware/src/", "/guest/lib/src/", "/guest/modules/src/lib.rs", "/rustc/", "kmemvisor-sdk/", "/include/kmemvisor/"];

/// One place in the guest's code; the parts DWARF does not give are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The instruction, or for a caller's frame the return address (its line
    /// is that of the call).
    #[serde(serialize_with = "hex")]
    pub rip: u64,
    /// The function, demangled; for inlined code, the inlined function.
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The line in that file.
    pub line: Option<u32>,
}

fn hex<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#x}"))
}

impl Location {
    /// A location of which only the address is known.
    pub fn unknown(rip: u64) -> Location {
        Location { rip, function: None, file: None, line: None }
    }

    /// Whether this is the guest's own code rather than support code (by
    /// its function's crate or its file's directory). A frame without a
    /// function name (no DWARF for it) is not the guest's code either.
    fn is_guest_code(&self) -> bool {
        let Some(name) = self.function.as_deref() else { return false };
        let name = name.trim_start_matches('<');
        let in_support = SUPPORT_CRATES.iter().any(|krate| name.starts_with(krate))
            || self.file.as_deref().is_some_and(|file| SUPPORT_SOURCES.iter().any(|dir| file.contains(dir)));
        !in_support
    }
}

impl fmt::Display for Location {
    /// `FUNCTION (FILE:LINE)`, with `?` for what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.function.as_deref().unwrap_or("?"))?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line})"),
            (Some(file), None) => write!(f, "{file})"),
            _ => write!(f, "{:#x})", self.rip),
        }
    }
}

/// Where a report happened: the site, its caller, and every frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Place {
    /// The site: the first frame in the guest's own code, or the first frame
    /// when none is.
    pub location: Location,
    /// Who called the site: the next frame in the guest's own code, or
    /// the frame right after the site when none is (`main`'s caller is the
    /// firmware); `None` when the site is the last frame.
    #[serde(skip)]
    pub caller: Option<Location>,
    /// Every frame, innermost first; inlined functions are frames of their own.
    pub frames: Vec<Location>,
}

impl Place {
    /// The place of `stack` (as [`stack::capture`] gives it): each address
    /// looked up in `symbols`, return addresses by the call before them.
    pub fn of(stack: &[u64], symbols: &Symbols) -> Place {
        let frames: Vec<Location> = stack
            .iter()
            .enumerate()
            .flat_map(|(i, &rip)| {
                // A return address follows its call; the byte before it is the call's.
                let probe = if i == 0 { rip } else { rip.wrapping_sub(1) };
                symbols.frames(rip, probe)
            })
            .collect();
        Place::from_frames(frames)
    }

    /// The place whose frames are `frames`, innermost first.
    fn from_frames(frames: Vec<Location>) -> Place {
        let site = frames.iter().position(Location::is_guest_code).unwrap_or(0);
        let location = frames.get(site).cloned().unwrap_or_else(|| Location::unknown(0));
        let after = frames.get(site + 1..).unwrap_or_default();
        let caller = after.iter().find(|f| f.is_guest_code()).or(after.first()).cloned();
        Place { location, caller, frames }
    }

    /// A place of which only `rip` is known (before the report looks it up).
    pub fn unknown(rip: u64) -> Place {
        Place { location: Location::unknown(rip), caller: None, frames: Vec::new() }
    }

    /// ` at FUNCTION (FILE:LINE), called from FUNCTION (FILE:LINE)` for the
    /// human-readable lines; empty when nothing is known of the site.
    pub fn describe(&self) -> String {
        if self.location.function.is_none() && self.location.line.is_none() {
            return String::new();
        }
        match &self.caller {
            Some(caller) => format!(" at {}, called from {caller}", self.location),
            None => format!(" at {}", self.location),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rip: u64, function: &str, line: u32) -> Location {
        Location { rip, function: Some(function.into()), file: Some("src/bin/x.rs".into()), line: Some(line) }
    }

    #[test]
    fn support_code_is_told_by_the_crate_of_the_function() {
        assert!(!at(1, "kmemvisor_guest::aix::xmfree", 1).is_guest_code());
        assert!(!at(1, "<kmemvisor_guest::Console as core::fmt::Write>::write_str", 1).is_guest_code());
        assert!(!at(1, "core::ptr::read_volatile<u64>", 1).is_guest_code());
        assert!(at(1, "dma_race::main", 1).is_guest_code());
        assert!(!at(1, "__rustc::rust_begin_unwind", 1).is_guest_code(), "the panic handler");
        let firmware = Location { file: Some("/src/kmemvisor/firmware/src/lib.rs".into()), ..at(1, "kmv_main", 74) };
        assert!(!firmware.is_guest_code(), "the firmware's unmangled functions are told by their file");
        let c_runtime = Location { file: Some("/build/kmemvisor-sdk/runtime/services.c".into()), ..at(1, "xmfree", 111) };
        let c_header = Location { file: Some("/opt/sdk/include/kmemvisor/runtime.h".into()), ..at(1, "kmv_hypercall", 39) };
        assert!(!c_runtime.is_guest_code() && !c_header.is_guest_code(), "the C SDK's runtime and headers");
        let c_driver = Location { file: Some("/home/me/driver.c".into()), ..at(1, "main", 9) };
        assert!(c_driver.is_guest_code());
        assert!(!Location::unknown(1).is_guest_code(), "a frame without a name is never the site");
    }

    #[test]
    fn places_describe_the_site_and_its_caller() {
        let place = Place { location: at(0x10, "a::f", 7), caller: Some(at(0x20, "a::main", 9)), frames: Vec::new() };
        assert_eq!(place.describe(), " at a::f (src/bin/x.rs:7), called from a::main (src/bin/x.rs:9)");
        assert_eq!(Place::unknown(0x10).describe(), "");
        let no_file = Location { function: Some("f".into()), ..Location::unknown(0x30) };
        assert_eq!(no_file.to_string(), "f (0x30)");
        let json = serde_json::to_value(Place::unknown(0x10)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"location": {"rip": "0x10", "function": null, "file": null, "line": null}, "frames": []})
        );
    }

    fn place_of(frames: &[Location]) -> Place {
        Place::from_frames(frames.to_vec())
    }

    #[test]
    fn the_caller_is_the_next_frame_of_the_guest_s_own_code() {
        let frames = [
            at(1, "kmemvisor_guest::hypercall::hypercall", 29),
            at(1, "drv::read_words::{{closure}}", 55),
            at(2, "core::iter::adapters::map::map_try_fold", 9),
            at(3, "drv::main", 70),
            at(4, "kmv_main", 74),
        ];
        let site = frames.iter().position(Location::is_guest_code);
        assert_eq!(site, Some(1));
        let place = place_of(&frames);
        assert_eq!((place.location.line, place.caller.and_then(|c| c.line)), (Some(55), Some(70)));
        let place = place_of(&frames[3..]);
        assert_eq!(place.caller.map(|c| c.function), Some(Some("kmv_main".into())), "no guest code after main: its caller");
        assert_eq!(place_of(&frames[4..]).location.line, Some(74), "no guest code at all: the first frame");
        assert_eq!(place_of(&frames[4..]).caller, None);
    }

    #[test]
    fn an_empty_stack_or_no_dwarf_gives_unknown_frames() {
        let none = Symbols::new(&[]);
        assert_eq!(Place::of(&[], &none), Place::unknown(0));
        let place = Place::of(&[0x1000, 0x2000], &none);
        assert_eq!(place.location, Location::unknown(0x1000));
        assert_eq!(place.frames, vec![Location::unknown(0x1000), Location::unknown(0x2000)]);
    }
}
