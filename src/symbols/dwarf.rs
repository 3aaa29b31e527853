//! The guest's DWARF, read with `addr2line` from the ELF bytes of the image
//! and of each module.
//!
//! The ELF is attacker-chosen: anything `object`, `gimli` or `addr2line`
//! refuses (no ELF, no DWARF, a truncated or garbled section) leaves that
//! object, or that one address, without a location. Nothing here panics on
//! what the guest built, and each lookup is bounded (`MAX_INLINED`).
//! `addr2line` parses nested inlined functions recursively, so DWARF that
//! nests deeper than [`MAX_DIE_DEPTH`] (none that a compiler writes) is
//! refused whole before it could exhaust the stack.

use std::borrow::Cow;
use std::sync::Arc;

use gimli::{EndianArcSlice, RunTimeEndian, Section};
use object::{Object, ObjectSection};

use super::Location;

type Reader = EndianArcSlice<RunTimeEndian>;

/// The most inlined functions reported at one address.
const MAX_INLINED: usize = 16;

/// The deepest nesting of DWARF entries accepted; compilers nest a few
/// dozen levels.
const MAX_DIE_DEPTH: isize = 256;

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
    context_of(gimli::Dwarf::load(load).ok()?)
}

/// The `addr2line` context of `dwarf`, or `None` when it is empty or nests too deep.
fn context_of(dwarf: gimli::Dwarf<Reader>) -> Option<addr2line::Context<Reader>> {
    if dwarf.debug_info.reader().is_empty() && dwarf.debug_line.reader().is_empty() || !shallow(&dwarf) {
        return None;
    }
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// Whether no entry of `dwarf` nests deeper than `MAX_DIE_DEPTH`, read
/// without recursion. Reading stops at the first malformed unit or entry,
/// where `addr2line`'s own reading stops too.
fn shallow(dwarf: &gimli::Dwarf<Reader>) -> bool {
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let Ok(abbreviations) = header.abbreviations(&dwarf.debug_abbrev) else { continue };
        let Ok(mut entries) = header.entries_raw(&abbreviations, None) else { continue };
        while !entries.is_empty() {
            if entries.next_depth() > MAX_DIE_DEPTH {
                return false;
            }
            match entries.read_abbreviation() {
                Ok(Some(abbreviation)) if entries.skip_attributes(abbreviation.attributes()).is_ok() => {}
                Ok(None) => {}
                _ => break,
            }
        }
    }
    true
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
    use object::ObjectSymbol;

    fn hello() -> &'static [u8] {
        crate::guests::find("hello").expect("bundled guest").elf
    }

    /// The address range of each function in `elf`'s symbol table.
    fn functions(elf: &[u8]) -> Vec<(String, std::ops::Range<u64>)> {
        let file = object::File::parse(elf).expect("elf");
        let symbols = file.symbols().filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0);
        symbols.map(|s| (s.name().unwrap_or("").to_owned(), s.address()..s.address() + s.size())).collect()
    }

    fn kmv_main(elf: &[u8]) -> std::ops::Range<u64> {
        functions(elf).into_iter().find(|(name, _)| name == "kmv_main").expect("kmv_main").1
    }

    /// `hello::main` is inlined into the firmware's `kmv_main`: an address
    /// in it has both frames, the inlined one first, each with its line.
    #[test]
    fn code_of_a_bundled_guest_is_named_with_its_function_file_and_line() {
        let symbols = Symbols::new(&[hello()]);
        let found = kmv_main(hello()).find_map(|rip| {
            let frames = symbols.frames(rip, rip);
            frames.iter().any(|f| f.function.as_deref() == Some("hello::main")).then_some(frames)
        });
        let frames = found.expect("an address in hello::main");
        let main = frames.iter().find(|f| f.function.as_deref() == Some("hello::main")).expect("main");
        assert!(main.file.as_deref().is_some_and(|f| f.ends_with("guest/programs/src/bin/hello.rs")), "{frames:?}");
        assert!(main.line.is_some_and(|l| l > 0), "{frames:?}");
        let outer = frames.last().expect("outermost");
        assert_eq!(outer.function.as_deref(), Some("kmv_main"), "{frames:?}");
        assert!(outer.file.as_deref().is_some_and(|f| f.ends_with("firmware/src/lib.rs")), "{frames:?}");
    }

    #[test]
    fn input_that_is_no_elf_or_has_no_dwarf_gives_no_location() {
        let elf = hello();
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let main = kmv_main(elf).start;
        for bytes in [&[][..], b"\x7fELF", &elf[..64], &elf[..elf.len() / 2], &garbage[..]] {
            assert_eq!(Symbols::new(&[bytes]).frames(main, main), vec![Location::unknown(main)], "{} bytes", bytes.len());
        }
        assert_eq!(Symbols::new(&[elf]).frames(0x1234, 0x1234), vec![Location::unknown(0x1234)], "an address no object has");
    }

    /// DWARF of one unit whose entries nest `depth` levels: a compile unit
    /// holding inlined subroutines each inside the one before.
    fn nested(depth: usize) -> gimli::Dwarf<Reader> {
        // Abbreviation 1: DW_TAG_compile_unit, 2: DW_TAG_inlined_subroutine; both with children, no attributes.
        let abbrev = [1, 0x11, 1, 0, 0, 2, 0x1d, 1, 0, 0, 0];
        let mut entries = vec![1u8];
        entries.extend(std::iter::repeat_n(2u8, depth));
        entries.extend(std::iter::repeat_n(0u8, depth + 1));
        // A DWARF 4 unit header: length, version, abbreviation offset, address size.
        let length = u32::try_from(2 + 4 + 1 + entries.len()).expect("small");
        let mut info = length.to_le_bytes().to_vec();
        info.extend(4u16.to_le_bytes());
        info.extend(0u32.to_le_bytes());
        info.push(8);
        info.extend(entries);
        let section = |bytes: &[u8]| EndianArcSlice::new(Arc::from(bytes), RunTimeEndian::Little);
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            Ok(match id {
                gimli::SectionId::DebugAbbrev => section(&abbrev),
                gimli::SectionId::DebugInfo => section(&info),
                _ => section(&[]),
            })
        };
        gimli::Dwarf::load(load).expect("sections")
    }

    #[test]
    fn dwarf_that_nests_too_deep_is_refused_before_addr2line_reads_it() {
        assert!(shallow(&nested(10)));
        assert!(shallow(&nested(MAX_DIE_DEPTH as usize - 1)));
        assert!(!shallow(&nested(MAX_DIE_DEPTH as usize + 1)));
        assert!(context_of(nested(100_000)).is_none(), "a hostile nesting is refused");
        assert!(context_of(nested(10)).is_some());
    }

    /// Bytes of the DWARF sections of a real guest flipped, one at a time
    /// (a stride of them in each section): every function still looks up to
    /// something or nothing, and nothing panics.
    #[test]
    fn garbled_dwarf_never_panics() {
        let elf = hello();
        let file = object::File::parse(elf).expect("elf");
        let ranges: Vec<(usize, usize)> = file
            .sections()
            .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
            .filter_map(|s| s.file_range())
            .map(|(start, size)| (start as usize, size as usize))
            .collect();
        assert!(ranges.len() >= 3, "the bundled guests carry DWARF: {ranges:?}");
        let probes: Vec<u64> = functions(elf).into_iter().flat_map(|(_, range)| [range.start, range.end - 1]).collect();
        let mut garbled = 0;
        for &(start, size) in &ranges {
            for offset in (start..start + size).step_by(size / 16 + 1) {
                let mut broken = elf.to_vec();
                broken[offset] ^= 0xa5;
                let symbols = Symbols::new(&[&broken]);
                for &probe in &probes {
                    let frames = symbols.frames(probe, probe);
                    assert!(!frames.is_empty() && frames.len() <= MAX_INLINED);
                }
                garbled += 1;
            }
        }
        assert!(garbled >= 3 * 16, "{garbled}");
    }
}
