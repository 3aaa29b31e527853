//! Guest and module arguments: bundled names or ELF files, read safely.

use kmemvisor::guests::{self, Kind};
use kmemvisor::kvm::machine::MachineError;
use kmemvisor::loader::LoaderError;
use kmemvisor::report::status;
use kmemvisor::state::SetupError;

/// The largest guest or module ELF file kmemvisor reads: 64 MiB. What it
/// loads fits the image region (6 MiB) or a module slot, but an unstripped ELF
/// carries symbols and debug information beside that; a larger file cannot be
/// a guest, and is refused before it is read into memory.
pub(crate) const LARGEST_ELF_FILE: u64 = 64 << 20;

/// Why a GUEST or `--module` argument cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// A bundled module named as the guest.
    #[error(
        "`{0}` is a guest module, not a guest: load it next to a guest with \
         `kmemvisor run GUEST --module {0}` (for example `kmemvisor run modules --module {0}`)"
    )]
    ModuleAsGuest(String),
    /// A bundled guest named as a module.
    #[error("`{0}` is a bundled guest, not a module: run it with `kmemvisor run {0}`")]
    GuestAsModule(String),
    /// Neither a bundled name nor a path that can be opened.
    // The reason is part of the one-line usage message, not a `#[source]`.
    #[error("`{arg}` is neither a bundled {what} (see `kmemvisor list`) nor a readable file: {reason}{suggestion}")]
    Unreadable {
        /// The argument.
        arg: String,
        /// `; did you mean …?` with the closest bundled names, or nothing.
        suggestion: String,
        /// `guest` or `module`.
        what: &'static str,
        /// Why it could not be opened.
        reason: std::io::Error,
    },
    /// A path to something other than a regular file: reading a FIFO or a
    /// device could block or never end.
    #[error("Cannot load the {what} `{path}`: it is {kind}, not a regular file")]
    NotAFile {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// A file too large to be a guest ELF.
    #[error(
        "Cannot load the {what} `{path}`: it is {size} bytes, more than the {LARGEST_ELF_FILE} bytes (64 MiB) \
         a guest ELF may have"
    )]
    TooLarge {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// Its size, or the bytes read before giving up.
        size: u64,
    },
    /// The file could not be read.
    #[error("Cannot read the {what} `{path}`")]
    Read {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The loader refused the ELF.
    #[error("Cannot load the {what} `{name}`{from}")]
    Load {
        /// `guest image` or `module`.
        what: &'static str,
        /// The guest argument, or the module's name.
        name: String,
        /// ` from PATH` for a module read from a file, else empty.
        from: String,
        /// Why.
        #[source]
        source: LoaderError,
    },
}

impl InputError {
    /// The exit status: a usage error for a name that is no guest or module,
    /// a setup error for a file that is not a loadable ELF.
    pub(crate) fn status(&self) -> u8 {
        match self {
            InputError::ModuleAsGuest(_) | InputError::GuestAsModule(_) | InputError::Unreadable { .. } => status::USAGE,
            InputError::NotAFile { .. } | InputError::TooLarge { .. } | InputError::Read { .. } | InputError::Load { .. } => {
                status::BAD_IMAGE
            }
        }
    }
}

/// The ELF a GUEST or `--module` argument names, of `kind`: a bundled one by
/// name, else a file.
pub(crate) fn resolve(arg: &str, kind: Kind) -> Result<(String, Vec<u8>), InputError> {
    match guests::find(arg) {
        Some(bundled) if bundled.kind == kind => Ok((bundled.name.to_owned(), bundled.elf.to_vec())),
        Some(_) if kind == Kind::Guest => Err(InputError::ModuleAsGuest(arg.to_owned())),
        Some(_) => Err(InputError::GuestAsModule(arg.to_owned())),
        None => {
            let elf = read_elf_file(arg, kind)?;
            let name = std::path::Path::new(arg).file_name().map_or_else(|| arg.to_owned(), |n| n.to_string_lossy().into_owned());
            Ok((name, elf))
        }
    }
}

/// What a file of this type is, for a message; `None` for a regular file.
pub(crate) fn not_regular(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(match file_type {
        t if t.is_file() => return None,
        t if t.is_dir() => "a directory",
        t if t.is_fifo() => "a FIFO",
        t if t.is_socket() => "a socket",
        t if t.is_char_device() => "a character device",
        t if t.is_block_device() => "a block device",
        _ => "something else",
    })
}

/// Reads the ELF file at `path`, which must be a regular file of at most
/// [`LARGEST_ELF_FILE`] bytes: a FIFO would block the open, and a device such
/// as /dev/zero would be read until memory runs out.
pub(crate) fn read_elf_file(path: &str, kind: Kind) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let what = match kind {
        Kind::Guest => "guest image",
        Kind::Module => "module",
    };
    let unreadable =
        |reason| InputError::Unreadable { arg: path.to_owned(), suggestion: suggest(path, kind), what: kind.name(), reason };
    let check = |metadata: &std::fs::Metadata| match not_regular(metadata.file_type()) {
        Some(kind) => Err(InputError::NotAFile { what, path: path.to_owned(), kind }),
        None if metadata.len() > LARGEST_ELF_FILE => {
            Err(InputError::TooLarge { what, path: path.to_owned(), size: metadata.len() })
        }
        None => Ok(()),
    };
    // Looked at before it is opened: opening a device can have effects of its own.
    check(&std::fs::metadata(path).map_err(unreadable)?)?;
    // O_NONBLOCK: should the path have become a FIFO since, the open does not
    // wait for a writer; what was opened is checked again below.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(unreadable)?;
    let read_error = |source| InputError::Read { what, path: path.to_owned(), source };
    let metadata = file.metadata().map_err(read_error)?;
    check(&metadata)?;
    let mut elf = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // At most one byte more than allowed: a file that grows while it is read is still caught.
    file.take(LARGEST_ELF_FILE + 1).read_to_end(&mut elf).map_err(read_error)?;
    if elf.len() as u64 > LARGEST_ELF_FILE {
        return Err(InputError::TooLarge { what, path: path.to_owned(), size: elf.len() as u64 });
    }
    Ok(elf)
}

/// The setup error `error` about a guest image or module, told with the
/// argument that named it: `guest` and, for each module, its name and its
/// argument when that was a path.
pub(crate) fn name_the_input(
    error: MachineError,
    guest: &str,
    modules: &[(String, Option<&str>)],
) -> Result<InputError, MachineError> {
    match error {
        MachineError::Setup(SetupError::Loader(source)) => {
            Ok(InputError::Load { what: "guest image", name: guest.to_owned(), from: String::new(), source })
        }
        MachineError::Setup(SetupError::Module { name, source }) => {
            // Two module files may share a name; the error names only that.
            let mut paths: Vec<&str> = modules.iter().filter(|(n, _)| *n == name).filter_map(|(_, path)| *path).collect();
            paths.dedup();
            let from = if paths.is_empty() { String::new() } else { format!(" from {}", paths.join(" or ")) };
            Ok(InputError::Load { what: "module", name, from, source })
        }
        other => Err(other),
    }
}

/// The bundled names of `kind` closest to `arg` (a mistyped name, not a
/// path), as `; did you mean …?`, or nothing.
fn suggest(arg: &str, kind: Kind) -> String {
    if arg.contains('/') {
        return String::new();
    }
    let mut close: Vec<(usize, &str)> = guests::BUNDLED
        .iter()
        .filter(|g| g.kind == kind)
        .map(|g| (edit_distance(arg, g.name), g.name))
        .filter(|&(d, name)| d <= (name.len() / 3).max(2))
        .collect();
    close.sort_unstable();
    match close.iter().take(3).map(|(_, name)| format!("`{name}`")).collect::<Vec<_>>().as_slice() {
        [] => String::new(),
        names => format!("; did you mean {}?", names.join(" or ")),
    }
}

/// Levenshtein distance between `a` and `b`, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances_and_suggestions() {
        assert_eq!(edit_distance("hellp", "hello"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("dma-demo", "dma-demo"), 0);
        assert_eq!(suggest("hellp", Kind::Guest), "; did you mean `hello`?");
        assert_eq!(suggest("dma-handof", Kind::Guest), "; did you mean `dma-handoff`?");
        assert_eq!(suggest("./hellp", Kind::Guest), "", "a path is no mistyped name");
        assert_eq!(suggest("zzzzzzzzzz", Kind::Guest), "");
        assert_eq!(suggest("mod-sampel", Kind::Module), "; did you mean `mod-sample`?");
    }
}
