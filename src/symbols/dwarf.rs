//! The guest's DWARF, read with `addr2line` from the ELF bytes of the image
//! and of each module.
//!
//! The ELF is attacker-chosen: anything `object`, `gimli` or `addr2line`
//! refuses (no ELF, no DWARF, a truncated or garbled section) leaves that
//! object, or that one address, without a location. Nothing here panics on
//! what the guest built, and each lookup is bounded (`MAX_INLINED`).

use std::borrow::Cow;
use std::sync::Arc;

use gimli::{EndianArcSlice, RunTimeEndian, Section};
use object::{Object, ObjectSection};

use super::Location;

type Reader = EndianArcSlice<RunTimeEndian>;

/// The most inlined functions reported at one address.
const MAX_INLINED: usize = 16;

/// The DWARF of every loaded object that has some.
pub struct Symbols {
    contexts: Vec<addr2line::Context<Reader>>,
}

impl Symbols {
    /// The DWARF of each ELF in `objects` (the image, then the modules);
    /// those without usable DWARF are left out.
    pub fn new(objects: &[&[u8]]) -> Symbols {
        Symbols { contexts: objects.iter().filter_map(|elf| context(elf)).collect() }
    }

    /// The frames at `rip`, looked up at `probe` (`rip`, or for a return
    /// address the byte before it): the innermost inlined function first,
    /// then the functions it is inlined into. One unknown frame when no
    /// object knows the address.
    pub fn frames(&self, rip: u64, probe: u64) -> Vec<Location> {
        let found = self.contexts.iter().map(|context| lookup(context, rip, probe)).find(|frames| !frames.is_empty());
        found.unwrap_or_else(|| vec![Location::unknown(rip)])
    }
}

/// The `addr2line` context of `elf`, or `None` when it has no usable DWARF.
fn context(elf: &[u8]) -> Option<addr2line::Context<Reader>> {
    let file = object::File::parse(elf).ok()?;
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        // A section that is missing or cannot be read is empty: its lookups find nothing.
        let data = file.section_by_name(id.name()).and_then(|s| s.uncompressed_data().ok()).unwrap_or(Cow::Borrowed(&[]));
        Ok(EndianArcSlice::new(Arc::from(&*data), endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    if dwarf.debug_info.reader().is_empty() && dwarf.debug_line.reader().is_empty() {
        return None;
    }
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// The frames `context` knows at `probe`, at most `MAX_INLINED`; empty when
/// it knows nothing there or its DWARF is broken.
fn lookup(context: &addr2line::Context<Reader>, rip: u64, probe: u64) -> Vec<Location> {
    let mut frames = Vec::new();
    // No split DWARF is loaded: a lookup that needs it finds nothing.
    let Ok(mut iter) = context.find_frames(probe).skip_all_loads() else { return frames };
    while frames.len() < MAX_INLINED {
        let Ok(Some(frame)) = iter.next() else { break };
        let function = frame.function.as_ref().and_then(|f| f.demangle().ok()).map(|name| name.into_owned());
        let (file, line) = frame.location.map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
        if function.is_none() && file.is_none() {
            continue;
        }
        frames.push(Location { rip, function, file, line });
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled(name: &str) -> &'static [u8] {
        crate::guests::find(name).expect("bundled guest").elf
    }

    #[test]
    fn input_that_is_no_elf_or_has_no_dwarf_gives_no_location() {
        let hello = bundled("hello");
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for elf in [&[][..], b"\x7fELF", &hello[..64], &hello[..hello.len() / 2], &garbage[..]] {
            let symbols = Symbols::new(&[elf]);
            assert!(symbols.contexts.is_empty() || symbols.frames(0xffff_ffff_8020_0000, 0xffff_ffff_8020_0000).len() <= MAX_INLINED);
            assert_eq!(Symbols::new(&[elf]).frames(0x1234, 0x1234), vec![Location::unknown(0x1234)]);
        }
    }

    /// Every byte of the DWARF sections of a real guest flipped in turn
    /// (a stride of them): lookups find something or nothing, and never panic.
    #[test]
    fn garbled_dwarf_never_panics() {
        let hello = bundled("hello");
        let file = object::File::parse(hello).expect("elf");
        let entry = file.entry();
        let ranges: Vec<(usize, usize)> = file
            .sections()
            .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
            .filter_map(|s| s.file_range())
            .map(|(start, size)| (start as usize, size as usize))
            .collect();
        assert!(!ranges.is_empty(), "the bundled guests carry DWARF");
        let mut looked_up = 0;
        for &(start, size) in &ranges {
            for offset in (start..start + size).step_by(size / 24 + 1) {
                let mut broken = hello.to_vec();
                broken[offset] ^= 0xff;
                let symbols = Symbols::new(&[&broken]);
                let frames = symbols.frames(entry, entry);
                assert!(!frames.is_empty() && frames.len() <= MAX_INLINED);
                looked_up += 1;
            }
        }
        assert!(looked_up > 24);
    }

    #[test]
    fn the_entry_of_a_bundled_guest_is_in_the_firmware() {
        let hello = bundled("hello");
        let entry = object::File::parse(hello).expect("elf").entry();
        let frames = Symbols::new(&[hello]).frames(entry, entry);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].rip, entry);
    }
}
