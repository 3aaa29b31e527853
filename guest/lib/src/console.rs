//! Console output: [`console_write`], and the buffers behind [`print!`](crate::print)
//! and the firmware's panic message.
//!
//! Every console write is an exit, so formatted output is collected in a fixed
//! stack buffer and written in as few calls as it fits in: a `println!` of up to
//! [`PRINT_BUFFER_SIZE`] bytes is one call, and one call is one line in the
//! console even when several vCPUs print at once.

use core::fmt;

use kmemvisor_abi::{Service, Status};

/// Bytes [`print!`](crate::print) collects before it writes them out.
pub const PRINT_BUFFER_SIZE: usize = 512;

/// Writes `bytes` to the console; the value is the number of bytes written.
pub fn console_write(bytes: &[u8]) -> Result<usize, Status> {
    let args = [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0];
    // SAFETY: the pointer and length name the live slice `bytes`; the VMM only
    // reads it.
    unsafe { crate::call(Service::ConsoleWrite, args) }.map(|n| n as usize)
}

/// Writes all of `bytes`, continuing after short writes; gives up on an error or
/// when the VMM writes nothing.
pub fn console_write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match console_write(bytes) {
            Ok(n) if n > 0 && n <= bytes.len() => bytes = &bytes[n..],
            _ => return,
        }
    }
}

/// A fixed buffer that keeps the first `N` bytes written to it and drops the
/// rest (at a character boundary), remembering that it did.
pub struct TruncatingBuffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> TruncatingBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        TruncatingBuffer { bytes: [0; N], len: 0, truncated: false }
    }

    /// The bytes kept (always whole UTF-8 characters).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends as much of `s` as fits, cut at a character boundary.
    pub fn push_str(&mut self, s: &str) {
        let room = N - self.len;
        let take = floor_char_boundary(s, room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.truncated |= take < s.len();
    }
}

impl<const N: usize> Default for TruncatingBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for TruncatingBuffer<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Never an error: formatting goes on, and what does not fit is dropped.
        self.push_str(s);
        Ok(())
    }
}

/// A fixed buffer that hands its bytes to `sink` whenever it is full and when
/// [`flush`](FlushingBuffer::flush)ed, so nothing is lost and the sink is called
/// as rarely as the buffer allows. Characters are never split across calls
/// (unless one is longer than the buffer, which `N >= 4` rules out).
pub struct FlushingBuffer<F: FnMut(&[u8]), const N: usize> {
    buffer: TruncatingBuffer<N>,
    sink: F,
}

impl<F: FnMut(&[u8]), const N: usize> FlushingBuffer<F, N> {
    /// An empty buffer that flushes into `sink`.
    pub const fn new(sink: F) -> Self {
        const { assert!(N >= 4, "a buffer must hold any character") };
        FlushingBuffer { buffer: TruncatingBuffer::new(), sink }
    }

    /// Hands the collected bytes to the sink, if there are any.
    pub fn flush(&mut self) {
        if self.buffer.len > 0 {
            (self.sink)(self.buffer.as_bytes());
            self.buffer.len = 0;
        }
    }
}

impl<F: FnMut(&[u8]), const N: usize> fmt::Write for FlushingBuffer<F, N> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while !s.is_empty() {
            let room = N - self.buffer.len;
            let take = floor_char_boundary(s, room);
            if take == 0 {
                self.flush();
                continue;
            }
            self.buffer.push_str(&s[..take]);
            s = &s[take..];
        }
        Ok(())
    }
}

/// The largest `i <= max` at which `s` can be cut.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Prints `args` to the console: what [`print!`](crate::print) expands to.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut out = FlushingBuffer::<_, PRINT_BUFFER_SIZE>::new(console_write_all);
    let _ = fmt::Write::write_fmt(&mut out, args);
    out.flush();
}

/// Prints to the kmemvisor console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the kmemvisor console, like `std::println!`; the line and
/// its newline go out in one console write when they fit the print buffer.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::_print(::core::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn truncating_buffer_keeps_what_fits_at_a_char_boundary() {
        let mut b = TruncatingBuffer::<8>::new();
        write!(b, "abc").unwrap();
        assert_eq!(b.as_bytes(), b"abc");
        assert!(!b.truncated());
        // "é" is two bytes: "abcde" + "é" = 7, then "ü" (two) does not fit.
        write!(b, "deéü!").unwrap();
        assert_eq!(b.as_bytes(), "abcdeé".as_bytes());
        assert!(b.truncated());
        write!(b, "x").unwrap();
        assert_eq!(b.as_bytes(), "abcdeéx".as_bytes());
    }

    #[test]
    fn flushing_buffer_loses_nothing_and_flushes_only_when_full() {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        {
            let mut b = FlushingBuffer::<_, 8>::new(|c: &[u8]| chunks.push(c.to_vec()));
            write!(b, "hello-{}", 12345).unwrap();
            write!(b, "ééé").unwrap();
            b.flush();
            b.flush();
        }
        let all: Vec<u8> = chunks.concat();
        assert_eq!(all, "hello-12345ééé".as_bytes());
        assert!(chunks.iter().all(|c| c.len() <= 8 && !c.is_empty()));
        assert!(chunks.iter().all(|c| core::str::from_utf8(c).is_ok()));
        assert_eq!(chunks[0], b"hello-12");
    }

    #[test]
    fn a_short_line_is_one_flush() {
        let mut chunks = 0;
        {
            let mut b = FlushingBuffer::<_, PRINT_BUFFER_SIZE>::new(|_: &[u8]| chunks += 1);
            writeln!(b, "vCPU {}: {} calls done", 3, 1000).unwrap();
            b.flush();
        }
        assert_eq!(chunks, 1);
    }
}
