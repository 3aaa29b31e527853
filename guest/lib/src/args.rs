//! The guest's arguments: `kmemvisor run GUEST -- ARGS` puts them in the
//! boot-info page ([`BootInfo`]) as one line of words separated by spaces.

use core::str::Split;

use kmemvisor_abi::boot_info::CMDLINE_MAX;
use kmemvisor_abi::{BootInfo, layout};

/// An iterator over the words of a command line (empty words skipped).
#[derive(Clone, Debug)]
pub struct Args<'a> {
    words: Split<'a, char>,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.words.by_ref().find(|w| !w.is_empty())
    }
}

/// The guest's arguments, from the boot-info page.
pub fn args() -> Args<'static> {
    let info = layout::BOOT_INFO_VA as *const BootInfo;
    // SAFETY: the VMM maps the boot-info page read-only at BOOT_INFO_VA for the
    // life of the VM and never changes it after boot; a BootInfo has no
    // invalid bit patterns.
    let info: &'static BootInfo = unsafe { &*info };
    split_args(&info.cmdline, info.cmdline_len)
}

/// Splits the first `len` bytes of `cmdline` into words. A length beyond the
/// buffer is clamped; bytes from the first invalid UTF-8 sequence on are ignored.
pub fn split_args(cmdline: &[u8], len: u64) -> Args<'_> {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(cmdline.len()).min(CMDLINE_MAX);
    let bytes = &cmdline[..len];
    let text = match core::str::from_utf8(bytes) {
        Ok(text) => text,
        // The prefix up to valid_up_to() is valid UTF-8 by definition.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    };
    Args { words: text.split(' ') }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmdline: &[u8], len: u64) -> Vec<&str> {
        split_args(cmdline, len).collect()
    }

    #[test]
    fn splits_on_spaces_and_skips_empty_words() {
        assert_eq!(words(b"floor 1000", 10), ["floor", "1000"]);
        assert_eq!(words(b"  a  b ", 7), ["a", "b"]);
        assert!(words(b"", 0).is_empty());
        assert!(words(b"   ", 3).is_empty());
    }

    #[test]
    fn honours_the_length_and_clamps_it() {
        assert_eq!(words(b"null 5 trailing", 6), ["null", "5"]);
        assert_eq!(words(b"a b", u64::MAX), ["a", "b"]);
    }

    #[test]
    fn stops_at_invalid_utf8() {
        assert_eq!(words(b"ok fine\xffbad", 12), ["ok", "fine"]);
    }
}
