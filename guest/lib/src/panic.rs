//! Reporting a panic to the VMM: the body of the `#[panic_handler]` of the
//! firmware (for images) and of the module runtime (for modules), which each
//! link their own copy of this library.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::console::TruncatingBuffer;

/// Bytes of panic message sent to the VMM; a longer message is cut.
pub const PANIC_MESSAGE_MAX: usize = 512;

/// Set by the first panic of this object. A panic while formatting a panic
/// message (or a second vCPU panicking meanwhile) then reports a fixed
/// message, so the handler cannot recurse.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// The message reported for a panic that happens while another is reported.
const NESTED_PANIC: &[u8] = b"panicked while reporting a panic";

/// Reports a panic to the VMM: the message (cut to [`PANIC_MESSAGE_MAX`]
/// bytes) and file:line:column. The VMM ends the VM.
pub fn report(info: &PanicInfo<'_>) -> ! {
    let (file, line, column) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("", 0, 0),
    };
    if PANICKING.swap(true, Ordering::Relaxed) {
        crate::report_panic(NESTED_PANIC, file, line, column)
    }
    let mut message = TruncatingBuffer::<PANIC_MESSAGE_MAX>::new();
    let _ = write!(message, "{}", info.message());
    crate::report_panic(message.as_bytes(), file, line, column)
}
