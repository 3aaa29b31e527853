//! The C SDK's part of the VMM's build (a module of `build.rs`): builds the
//! SDK into `$OUT_DIR/sdk` with the system C compiler, then the bundled C
//! guests (guest/c) against it, and writes `$OUT_DIR/sdk_files.rs`, the SDK's
//! files as the binary carries them for `kmemvisor sdk install`.
//!
//! The SDK is
//!
//! - `include/`: sdk/include, plus `kmemvisor/abi.h` written from the ABI
//!   crate (`kmemvisor_abi::c_header`), so no number is typed twice;
//! - `lib/libkmemvisor.a`: sdk/runtime/common and sdk/runtime/image, and the
//!   firmware's own assembly (firmware/src/{header,entry,vectors}.s: the image
//!   header, the entry points, the vectors), with the operands the Rust
//!   firmware passes as `const`/`sym` filled in here;
//! - `lib/libkmemvisor-module.a`: sdk/runtime/common and the module runtime's
//!   header (guest/modules/src/header.s), for guest modules;
//! - `lib/kmemvisor-module-slotN.ld`: the module runtime's linker script, one
//!   per module slot;
//! - `lib/kmemvisor.ld`: the firmware's linker script, filled by
//!   `kmemvisor_abi::image::fill_linker_script` as the firmware's own;
//! - `lib/pkgconfig/kmemvisor.pc`, with [`CFLAGS`] and [`LIBS`], and
//!   `kmemvisor-module.pc`, with [`MODULE_LIBS`];
//! - `share/doc/kmemvisor/README.md`: sdk/README.md.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kmemvisor_abi::module::{self, MODULE_MAGIC};
use kmemvisor_abi::{ABI_VERSION, HYPERCALL_PORT, Service, image, layout};

use super::fail;

/// What every translation unit of a guest is compiled with: a static,
/// freestanding image in the top 2 GiB (the kernel code model), no red zone
/// (exceptions and interrupts push on the guest's own stack), no stack
/// protector (no C library), frame pointers for kmemvisor's backtraces (in
/// leaf functions too: without one, a leaf such as the runtime's `xmfree`
/// hides its caller), and debug information for its file:line diagnostics.
/// `{includedir}` is replaced.
pub const CFLAGS: &str = "-I{includedir} -ffreestanding -fno-pic -fno-pie -mcmodel=kernel -mno-red-zone \
     -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-omit-frame-pointer \
     -mno-omit-leaf-frame-pointer -fcf-protection=none -g";

/// How a guest is linked: no C library or start files, the kmemvisor image
/// layout, and the whole runtime (it must come in even though `pkg-config`
/// puts it before the driver's own files), unused sections dropped.
/// `{libdir}` is replaced.
pub const LIBS: &str = "-nostdlib -static -Wl,--build-id=none -Wl,-T,{libdir}/kmemvisor.ld \
     -Wl,--gc-sections -L{libdir} -Wl,--whole-archive -lkmemvisor -Wl,--no-whole-archive";

/// How a guest module is linked: as an image, with the module runtime and the
/// linker script of module slot `{slot}`.
pub const MODULE_LIBS: &str = "-nostdlib -static -Wl,--build-id=none \
     -Wl,-T,{libdir}/kmemvisor-module-slot{slot}.ld -Wl,--gc-sections -L{libdir} -Wl,--whole-archive \
     -lkmemvisor-module -Wl,--no-whole-archive";

/// The runtime's own extra flags: warnings are errors, and the string
/// functions must not be compiled into calls to themselves.
const RUNTIME_CFLAGS: &str = "-O2 -Wall -Wextra -Werror -ffunction-sections -fdata-sections -fno-builtin \
     -fno-tree-loop-distribute-patterns";

/// The firmware's assembly files the image runtime assembles, in link order.
const FIRMWARE_ASSEMBLY: [&str; 3] = ["header.s", "entry.s", "vectors.s"];
/// The module runtime's assembly: the module header.
const MODULE_ASSEMBLY: &str = "guest/modules/src/header.s";

/// The SDK as built: where it is and the files it holds, relative to it.
pub struct Sdk {
    pub dir: PathBuf,
    pub files: Vec<String>,
    pub cc: String,
}

/// The C compiler: `$CC`, else `cc`. Stops the build with advice when there is none.
fn compiler() -> String {
    let cc = std::env::var("CC").ok().filter(|cc| !cc.is_empty()).unwrap_or_else(|| "cc".to_owned());
    match Command::new(&cc).arg("--version").output() {
        Ok(out) if out.status.success() => cc,
        _ => fail(&format!(
            "no working C compiler (`{cc}`): the C SDK and the bundled C guests are built with it. \
             Install gcc (Debian/Ubuntu: `apt install gcc`; Fedora: `dnf install gcc`) or clang, \
             or name one in CC."
        )),
    }
}

/// Runs `command`; stops the build with its output when it fails.
fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| fail(&format!("cannot run {what}: {e}")));
    if !out.status.success() {
        fail(&format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

fn write(path: &Path, contents: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", parent.display())));
    }
    fs::write(path, contents).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())))
}

/// The files directly in `dir` whose names end with `suffix`, sorted.
fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_str().is_some_and(|p| p.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

/// The flags with the SDK's directories filled in, split into arguments.
pub fn flags(template: &str, sdk: &Path) -> Vec<String> {
    let (include, lib) = (sdk.join("include"), sdk.join("lib"));
    template
        .replace("{includedir}", &include.display().to_string())
        .replace("{libdir}", &lib.display().to_string())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// One firmware assembly file for GNU as: the operands the Rust firmware
/// passes to `global_asm!` filled in (its symbols are the C runtime's),
/// `//` comments removed (GNU as does not take them on x86), Intel syntax.
fn firmware_assembly(source: &str, name: &str, magic: [u8; 8]) -> String {
    let mut operands: Vec<(String, String)> = (0..magic.len()).map(|i| (format!("{{m{i}}}"), magic[i].to_string())).collect();
    operands.extend(
        [
            ("{abi_version}", ABI_VERSION.to_string()),
            ("{boot}", "kmv_c_boot".to_owned()),
            ("{ap_main}", "kmv_c_ap_main".to_owned()),
            ("{stride}", image::VECTOR_STRIDE.to_string()),
            ("{exception}", Service::Exception.number().to_string()),
            ("{interrupt_return}", Service::InterruptReturn.number().to_string()),
            ("{port}", HYPERCALL_PORT.to_string()),
            ("{dispatch}", "kmv_c_interrupt_dispatch".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut out = String::from(".intel_syntax noprefix\n");
    for line in source.lines() {
        let mut line = line.split("//").next().unwrap_or("").to_owned();
        for (placeholder, value) in &operands {
            line = line.replace(placeholder.as_str(), value);
        }
        if line.contains('{') {
            fail(&format!("{name} has an operand sdk/build.rs does not know: {line}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    // The stack is not executable (GNU ld warns about objects that do not say so).
    out.push_str(".section .note.GNU-stack, \"\", @progbits\n");
    out
}

fn sources_dir(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join("sdk")
}

/// Builds the SDK into `$OUT_DIR/sdk`.
pub fn build(manifest_dir: &Path, out_dir: &Path) -> Sdk {
    let cc = compiler();
    let sources = sources_dir(manifest_dir);
    let dir = out_dir.join("sdk");
    let work = out_dir.join("sdk-build");
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&work);
    let mut files = Vec::new();

    // Headers.
    let include = sources.join("include");
    for header in files_in(&include, ".h").into_iter().chain(files_in(&include.join("kmemvisor"), ".h")) {
        let relative = header.strip_prefix(&sources).unwrap_or(&header).display().to_string();
        write(&dir.join(&relative), read(&header).as_bytes());
        files.push(relative);
    }
    let mut abi = String::new();
    kmemvisor_abi::c_header::write_c_header(&mut abi).unwrap_or_else(|e| fail(&format!("writing abi.h: {e}")));
    write(&dir.join("include/kmemvisor/abi.h"), abi.as_bytes());
    files.push("include/kmemvisor/abi.h".to_owned());

    // The runtimes: what images and modules share, then each one's own.
    fs::create_dir_all(&work).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", work.display())));
    let compile = |sources: Vec<PathBuf>| -> Vec<PathBuf> {
        let cflags = flags(CFLAGS, &dir);
        let prefix_map = format!("-fdebug-prefix-map={}=kmemvisor-sdk", sources_dir(manifest_dir).display());
        sources
            .into_iter()
            .map(|source| {
                let object = work.join(source.file_name().unwrap_or_default()).with_extension("o");
                run(
                    Command::new(&cc)
                        .args(&cflags)
                        .args(RUNTIME_CFLAGS.split_whitespace())
                        .arg(&prefix_map)
                        .arg("-c")
                        .arg(&source)
                        .arg("-o")
                        .arg(&object),
                    &format!("compiling {}", source.display()),
                );
                object
            })
            .collect()
    };
    let assemble = |path: &Path, magic: [u8; 8], object_name: &str| -> PathBuf {
        let name = path.strip_prefix(manifest_dir).unwrap_or(path).display().to_string();
        let source = work.join(object_name).with_extension("s");
        write(&source, firmware_assembly(&read(path), &name, magic).as_bytes());
        let object = source.with_extension("o");
        run(Command::new(&cc).arg("-c").arg(&source).arg("-o").arg(&object), &format!("assembling {name}"));
        object
    };
    let common = compile(files_in(&sources.join("runtime/common"), ".c"));
    let mut image_objects = common.clone();
    image_objects.extend(compile(files_in(&sources.join("runtime/image"), ".c")));
    for name in FIRMWARE_ASSEMBLY {
        image_objects.push(assemble(&manifest_dir.join("firmware/src").join(name), image::IMAGE_MAGIC, name));
    }
    let mut module_objects = common;
    module_objects.push(assemble(&manifest_dir.join(MODULE_ASSEMBLY), MODULE_MAGIC, "module-header"));
    fs::create_dir_all(dir.join("lib")).unwrap_or_else(|e| fail(&format!("cannot create {}/lib: {e}", dir.display())));
    let ar = std::env::var("AR").ok().filter(|ar| !ar.is_empty()).unwrap_or_else(|| "ar".to_owned());
    for (archive, objects) in [("libkmemvisor.a", image_objects), ("libkmemvisor-module.a", module_objects)] {
        run(Command::new(&ar).arg("rcs").arg(dir.join("lib").join(archive)).args(&objects), &format!("archiving {archive} (ar)"));
        files.push(format!("lib/{archive}"));
    }

    // The linker script.
    let template = read(&manifest_dir.join("firmware/kmemvisor.ld.in"));
    let mut script = String::from("/* The kmemvisor image layout (from firmware/kmemvisor.ld.in). */\n");
    if let Err(e) = image::fill_linker_script(&template, &mut script) {
        fail(&format!("firmware/kmemvisor.ld.in: {e:?}"));
    }
    write(&dir.join("lib/kmemvisor.ld"), script.as_bytes());
    files.push("lib/kmemvisor.ld".to_owned());
    let template = read(&manifest_dir.join("guest/modules/kmemvisor-module.ld.in"));
    for slot in 0..layout::MODULE_SLOTS as u64 {
        let mut script = String::from("/* The kmemvisor module layout (from guest/modules/kmemvisor-module.ld.in). */\n");
        if let Err(e) = image::fill_template(&template, &module::linker_script_values(slot), &mut script) {
            fail(&format!("guest/modules/kmemvisor-module.ld.in: {e:?}"));
        }
        let name = format!("lib/kmemvisor-module-slot{slot}.ld");
        write(&dir.join(&name), script.as_bytes());
        files.push(name);
    }

    write(&dir.join("share/doc/kmemvisor/README.md"), read(&sources.join("README.md")).as_bytes());
    files.push("share/doc/kmemvisor/README.md".to_owned());

    // pkg-config: the prefix is filled in at install time.
    let pc = format!(
        "prefix=@PREFIX@\nincludedir=${{prefix}}/include\nlibdir=${{prefix}}/lib\n\n\
         Name: kmemvisor\nDescription: Build C driver tests into kmemvisor guests\nVersion: {}\n\
         Cflags: {}\nLibs: {}\n",
        env!("CARGO_PKG_VERSION"),
        CFLAGS.replace("{includedir}", "${includedir}"),
        LIBS.replace("{libdir}", "${libdir}"),
    );
    write(&dir.join("lib/pkgconfig/kmemvisor.pc.in"), pc.as_bytes());
    files.push("lib/pkgconfig/kmemvisor.pc.in".to_owned());
    let pc = format!(
        "prefix=@PREFIX@\nincludedir=${{prefix}}/include\nlibdir=${{prefix}}/lib\n\
         # The module slot to link at: --define-variable=slot=N.\nslot=0\n\n\
         Name: kmemvisor-module\nDescription: Build guest modules in C for kmemvisor\nVersion: {}\n\
         Cflags: {}\nLibs: {}\n",
        env!("CARGO_PKG_VERSION"),
        CFLAGS.replace("{includedir}", "${includedir}"),
        MODULE_LIBS.replace("{libdir}", "${libdir}").replace("{slot}", "${slot}"),
    );
    write(&dir.join("lib/pkgconfig/kmemvisor-module.pc.in"), pc.as_bytes());
    files.push("lib/pkgconfig/kmemvisor-module.pc.in".to_owned());

    Sdk { dir, files, cc }
}

/// The second line of a C guest whose edges the fuzzer counts.
const COVERAGE_MARK: &str = "/* kmemvisor: coverage */";

/// The coverage instrumentation `cc` has: clang's guards, else gcc's
/// per-block calls (the SDK's runtime has the callbacks of both).
fn coverage_flag(cc: &str) -> &'static str {
    const GUARDS: &str = "-fsanitize-coverage=trace-pc-guard";
    let probe = Command::new(cc).args([GUARDS, "-x", "c", "-c", "/dev/null", "-o", "/dev/null"]).output();
    if probe.is_ok_and(|out| out.status.success()) { GUARDS } else { "-fsanitize-coverage=trace-pc" }
}

/// Builds each guest/c/NAME.c into `$OUT_DIR/c-guests/NAME` with the SDK;
/// returns (name, summary, elf path) sorted by name. The summary is the text
/// of the file's first line, a `/* ... */` comment; a second line
/// [`COVERAGE_MARK`] adds the coverage instrumentation.
pub fn build_c_guests(sdk: &Sdk, guest_dir: &Path, out_dir: &Path) -> Vec<(String, String, PathBuf)> {
    let elf_dir = out_dir.join("c-guests");
    fs::create_dir_all(&elf_dir).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", elf_dir.display())));
    let mut guests = Vec::new();
    for source in files_in(guest_dir, ".c") {
        let name = source.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let text = read(&source);
        let summary = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("/*"))
            .and_then(|line| line.strip_suffix("*/"))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fail(&format!("{} must start with a one-line `/* summary */`", source.display())));
        let elf = elf_dir.join(&name);
        let coverage = text.lines().nth(1).is_some_and(|line| line.trim() == COVERAGE_MARK);
        run(
            Command::new(&sdk.cc)
                .args(flags(CFLAGS, &sdk.dir))
                .args(["-O2", "-Wall", "-Wextra", "-Werror"])
                .args(coverage.then(|| coverage_flag(&sdk.cc)))
                .arg(&source)
                .arg("-o")
                .arg(&elf)
                .args(flags(LIBS, &sdk.dir)),
            &format!("building the C guest {}", source.display()),
        );
        guests.push((name, summary, elf));
    }
    guests
}

/// The Rust source of `sdk_files.rs`: every SDK file as (path, bytes), and
/// the flags with their directory placeholders.
pub fn files_source(sdk: &Sdk) -> String {
    let mut source = String::from(
        "// Generated by build.rs (sdk/build.rs): the C SDK's files.\n\
         /// The SDK's files: (path under the prefix, contents).\n\
         pub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for file in &sdk.files {
        let path = sdk.dir.join(file);
        let _ = writeln!(source, "    ({file:?}, include_bytes!({:?})),", path.display().to_string());
    }
    source.push_str("];\n");
    let _ = writeln!(
        source,
        "/// The compile flags; `{{includedir}}` stands for PREFIX/include.\npub const CFLAGS: &str = {CFLAGS:?};"
    );
    let _ = writeln!(source, "/// The link flags; `{{libdir}}` stands for PREFIX/lib.\npub const LIBS: &str = {LIBS:?};");
    let _ = writeln!(
        source,
        "/// The link flags of a module; `{{slot}}` stands for its slot.\npub const MODULE_LIBS: &str = {MODULE_LIBS:?};"
    );
    let _ = writeln!(source, "/// The module slots.\npub const MODULE_SLOTS: u64 = {};", layout::MODULE_SLOTS);
    source
}
