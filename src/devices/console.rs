//! The guest console: bytes from `console_write` become lines on the VMM's stdout.
//!
//! vCPU threads only buffer: each vCPU collects its bytes until a newline and
//! queues the finished line, then wakes the main thread through an eventfd. The
//! main thread's event loop writes the lines out (see [`crate::kvm::events`]), so a
//! slow stdout never stalls a vCPU inside an exit.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use crate::sync::lock;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// A line longer than this is broken, so that a guest cannot grow a buffer forever.
const MAX_LINE: usize = 4096;

/// The console of one VM.
#[derive(Debug)]
pub struct Console {
    partial: Vec<Mutex<Vec<u8>>>,
    lines: Mutex<VecDeque<String>>,
    prefix: bool,
    wake: EventFd,
}

impl Console {
    /// A console for `vcpus` vCPUs; lines carry a `[vcpu N]` prefix when there are several.
    pub fn new(vcpus: usize) -> std::io::Result<Console> {
        Ok(Console {
            partial: (0..vcpus).map(|_| Mutex::new(Vec::new())).collect(),
            lines: Mutex::new(VecDeque::new()),
            prefix: vcpus > 1,
            wake: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// A console holding what this one holds, with its own wake-up eventfd.
    pub fn try_clone(&self) -> std::io::Result<Console> {
        Ok(Console {
            partial: self.partial.iter().map(|p| Mutex::new(lock(p).clone())).collect(),
            lines: Mutex::new(lock(&self.lines).clone()),
            prefix: self.prefix,
            wake: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// Makes this console hold what `saved` holds, keeping its own eventfd
    /// (drained: a wake-up of the run that ended is void).
    pub fn restore_from(&mut self, saved: &Console) {
        for (partial, saved) in self.partial.iter().zip(&saved.partial) {
            lock(partial).clone_from(&lock(saved));
        }
        lock(&self.lines).clone_from(&lock(&saved.lines));
        self.prefix = saved.prefix;
        // Nothing to read (WouldBlock) is the usual case; any other failure
        // leaves at worst one spurious flush of an empty queue.
        let _ = self.wake.read();
    }

    /// What the console holds, as text (for state fingerprints).
    pub fn describe(&self) -> String {
        let partial: Vec<Vec<u8>> = self.partial.iter().map(|p| lock(p).clone()).collect();
        format!("{partial:?} {:?}", lock(&self.lines))
    }

    /// The eventfd that becomes readable when lines are queued.
    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }

    /// Takes bytes written by `vcpu`.
    pub fn write(&self, vcpu: usize, bytes: &[u8]) {
        let Some(partial) = self.partial.get(vcpu) else { return };
        let mut partial = lock(partial);
        let mut finished = Vec::new();
        for &byte in bytes {
            if byte == b'\n' || partial.len() >= MAX_LINE {
                finished.push(self.line(vcpu, &partial));
                partial.clear();
                if byte == b'\n' {
                    continue;
                }
            }
            partial.push(byte);
        }
        drop(partial);
        if !finished.is_empty() {
            lock(&self.lines).extend(finished);
            // A full eventfd counter only means the main thread has a wake-up pending.
            let _ = self.wake.write(1);
        }
    }

    fn line(&self, vcpu: usize, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches('\r');
        if self.prefix { format!("[vcpu {vcpu}] {text}") } else { text.to_string() }
    }

    /// Writes every queued line to `out`.
    pub fn flush_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let _ = self.wake.read();
        let lines: Vec<String> = lock(&self.lines).drain(..).collect();
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()
    }

    /// Queues what is left of unfinished lines (at the end of a run).
    pub fn close_lines(&self) {
        for vcpu in 0..self.partial.len() {
            let mut partial = lock(&self.partial[vcpu]);
            if !partial.is_empty() {
                let line = self.line(vcpu, &partial);
                partial.clear();
                lock(&self.lines).push_back(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(console: &Console) -> String {
        let mut out = Vec::new();
        console.flush_to(&mut out).expect("flush");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn lines_appear_only_when_finished() {
        let console = Console::new(1).expect("console");
        console.write(0, b"hel");
        assert_eq!(flushed(&console), "");
        console.write(0, b"lo\nwor");
        assert_eq!(flushed(&console), "hello\n");
        console.close_lines();
        assert_eq!(flushed(&console), "wor\n");
    }

    #[test]
    fn a_restored_console_holds_the_saved_text_only() {
        let saved = Console::new(2).expect("console");
        saved.write(0, b"done\nhalf");
        let mut console = Console::new(2).expect("console");
        console.write(1, b"of the run that ended\nand more");
        console.restore_from(&saved);
        assert!(console.wake_fd().read().is_err(), "the run's wake-up is drained");
        console.write(0, b" a line\n");
        assert_eq!(flushed(&console), "[vcpu 0] done\n[vcpu 0] half a line\n");
        console.close_lines();
        assert_eq!(flushed(&console), "");
    }

    #[test]
    fn several_vcpus_get_prefixes_and_do_not_mix_their_lines() {
        let console = Console::new(2).expect("console");
        console.write(0, b"from ");
        console.write(1, b"one\n");
        console.write(0, b"zero\n");
        assert_eq!(flushed(&console), "[vcpu 1] one\n[vcpu 0] from zero\n");
    }

    #[test]
    fn endless_lines_are_broken_and_bad_utf8_is_replaced() {
        let console = Console::new(1).expect("console");
        console.write(0, &vec![b'x'; MAX_LINE + 10]);
        console.write(0, b"\xff\n");
        let out = flushed(&console);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "xxxxxxxxxx\u{fffd}");
    }

    #[test]
    fn writes_from_an_unknown_vcpu_are_ignored() {
        let console = Console::new(1).expect("console");
        console.write(7, b"lost\n");
        assert_eq!(flushed(&console), "");
    }
}
