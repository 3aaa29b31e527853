//! The C SDK the binary carries (built by `sdk/build.rs`): `kmemvisor sdk
//! install` writes it under a prefix, and `kmemvisor cc` compiles with it
//! from a copy kept in the user's cache directory.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The SDK's pkg-config templates end so; install fills in their `@PREFIX@`.
const PKG_CONFIG_TEMPLATE: &str = ".pc.in";
/// A file every complete install has (written last).
const INSTALLED: &str = "lib/pkgconfig/kmemvisor.pc";

/// What can go wrong installing or using the SDK.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// A file or directory of the SDK could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// pkg-config files are text: the prefix must be UTF-8.
    #[error("the install prefix {0} is not valid UTF-8: the pkg-config file could not name it")]
    PrefixNotUtf8(PathBuf),
    /// `kmemvisor cc` has nowhere to keep its copy.
    #[error("no home or cache directory to keep the SDK in: set XDG_CACHE_HOME or HOME, or use `kmemvisor sdk install`")]
    NoCacheDirectory,
    /// No cc, gcc or clang, and no CC.
    #[error("no C compiler found: install gcc (Debian/Ubuntu: `apt install gcc`) or clang, or name one in CC")]
    NoCompiler,
    /// The compiler did not start.
    #[error("cannot run the C compiler {compiler}")]
    Compiler {
        /// Its name.
        compiler: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn write(path: &Path, contents: &[u8]) -> Result<(), SdkError> {
    let fail = |source| SdkError::Write { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    fs::write(path, contents).map_err(fail)
}

/// Writes the SDK under `prefix` (made absolute): `include/`, `lib/` with
/// `pkgconfig/kmemvisor.pc`, `share/doc/kmemvisor/`. Returns the files written.
pub fn install(prefix: &Path) -> Result<Vec<PathBuf>, SdkError> {
    let prefix = std::path::absolute(prefix).map_err(|source| SdkError::Write { path: prefix.to_owned(), source })?;
    let text = prefix.to_str().ok_or_else(|| SdkError::PrefixNotUtf8(prefix.clone()))?;
    let mut written = Vec::new();
    for (relative, contents) in FILES {
        let (relative, contents) = match relative.strip_suffix(".in") {
            Some(pc) if relative.ends_with(PKG_CONFIG_TEMPLATE) => {
                (pc, String::from_utf8_lossy(contents).replace("@PREFIX@", text).into_bytes())
            }
            _ => (*relative, contents.to_vec()),
        };
        let path = prefix.join(relative);
        write(&path, &contents)?;
        written.push(path);
    }
    Ok(written)
}

/// The SDK in the user's cache directory, installed there on first use (one
/// directory per kmemvisor build, so an upgrade never mixes files).
pub fn cached() -> Result<PathBuf, SdkError> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|home| PathBuf::from(home).join(".cache")))
        .ok_or(SdkError::NoCacheDirectory)?;
    let prefix = cache.join("kmemvisor").join(format!("sdk-{}-{:016x}", env!("CARGO_PKG_VERSION"), fingerprint()));
    if !prefix.join(INSTALLED).is_file() {
        install(&prefix)?;
    }
    Ok(prefix)
}

/// FNV-1a over the SDK's files: tells two builds' SDKs apart.
fn fingerprint() -> u64 {
    FILES
        .iter()
        .flat_map(|(path, contents)| path.bytes().chain(contents.iter().copied()))
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The compile flags for the SDK at `prefix`.
pub fn compile_flags(prefix: &Path) -> Vec<String> {
    flags(CFLAGS, prefix)
}

/// The link flags for the SDK at `prefix`: of an image, or of a module
/// linked at `module_slot`.
pub fn link_flags(prefix: &Path, module_slot: Option<u64>) -> Vec<String> {
    match module_slot {
        None => flags(LIBS, prefix),
        Some(slot) => flags(&MODULE_LIBS.replace("{slot}", &slot.to_string()), prefix),
    }
}

fn flags(template: &str, prefix: &Path) -> Vec<String> {
    template
        .replace("{includedir}", &prefix.join("include").display().to_string())
        .replace("{libdir}", &prefix.join("lib").display().to_string())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The C compiler: `$CC`, else the first of cc, gcc and clang that runs.
pub fn compiler() -> Result<String, SdkError> {
    if let Some(cc) = std::env::var("CC").ok().filter(|cc| !cc.is_empty()) {
        return Ok(cc);
    }
    ["cc", "gcc", "clang"]
        .into_iter()
        .find(|cc| Command::new(cc).arg("--version").output().is_ok_and(|out| out.status.success()))
        .map(str::to_owned)
        .ok_or(SdkError::NoCompiler)
}

/// Whether `args` only compile, assemble or preprocess: then there is no
/// link, and the link flags are left out.
pub fn compiles_only(args: &[OsString]) -> bool {
    args.iter().any(|a| ["-c", "-S", "-E", "-M", "-MM"].iter().any(|flag| a == flag))
}

/// The command `kmemvisor cc ARGS` runs: the compiler with the SDK's
/// compile flags, ARGS, then the link flags (after the driver's own files,
/// where a linker wants libraries).
pub fn cc_command(compiler: &str, prefix: &Path, module_slot: Option<u64>, args: &[OsString]) -> Command {
    let mut command = Command::new(compiler);
    command.args(compile_flags(prefix)).args(args);
    if !compiles_only(args) {
        command.args(link_flags(prefix, module_slot));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_every_file_and_a_pkg_config_file_naming_the_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = install(dir.path()).expect("install");
        assert_eq!(written.len(), FILES.len());
        let pc = fs::read_to_string(dir.path().join("lib/pkgconfig/kmemvisor.pc")).expect("kmemvisor.pc");
        assert!(pc.starts_with(&format!("prefix={}\n", dir.path().display())), "{pc}");
        assert!(!pc.contains('@'));
        let module_pc = fs::read_to_string(dir.path().join("lib/pkgconfig/kmemvisor-module.pc")).expect("kmemvisor-module.pc");
        assert!(module_pc.contains("\nslot=0\n") && module_pc.contains("kmemvisor-module-slot${slot}.ld"), "{module_pc}");
        for file in [
            "include/kmemvisor.h",
            "include/kmemvisor/abi.h",
            "lib/libkmemvisor.a",
            "lib/kmemvisor.ld",
            "lib/libkmemvisor-module.a",
        ] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
    }

    #[test]
    fn compile_only_commands_get_no_link_flags() {
        let prefix = Path::new("/opt/kmv");
        let args = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        let linked: Vec<_> =
            cc_command("gcc", prefix, None, &args(&["a.c", "-o", "a.elf"])).get_args().map(|a| a.to_owned()).collect();
        assert!(linked.iter().any(|a| a == "-Wl,-T,/opt/kmv/lib/kmemvisor.ld"));
        assert_eq!(linked.iter().position(|a| a == "a.c"), Some(compile_flags(prefix).len()));
        let compiled: Vec<_> = cc_command("gcc", prefix, None, &args(&["-c", "a.c"])).get_args().map(|a| a.to_owned()).collect();
        assert!(compiled.iter().any(|a| a == "-I/opt/kmv/include"));
        assert!(!compiled.iter().any(|a| a.to_string_lossy().starts_with("-Wl")));
        let module: Vec<_> = cc_command("gcc", prefix, Some(3), &args(&["m.c"])).get_args().map(|a| a.to_owned()).collect();
        assert!(module.iter().any(|a| a == "-Wl,-T,/opt/kmv/lib/kmemvisor-module-slot3.ld"));
        assert!(module.iter().any(|a| a == "-lkmemvisor-module"));
    }
}
