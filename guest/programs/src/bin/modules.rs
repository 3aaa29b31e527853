//! Needs `--module mod-sample`: calls the module and checks that pincode/unpincode count it and the image apart; no violations.
//!
//! The module table in the boot-info page names `mod-sample` at module slot
//! 0; its entry returns `arg * 3 + 1`. `pincode` of a module function pins
//! the module's pages only and `unpincode` of one undoes only the module's
//! `pincode`; the image is an object of its own. An address in the module's
//! data is no function. Every pin is undone, so the run ends with no
//! violation.
//!
//! Prints `PASS: case`, `FAIL: case: why` per case and `SUMMARY: N passed, M
//! failed, K skipped` at the end; exits 0 iff nothing failed. Without the
//! module it fails at once and says how to run it.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (there is no heap); only the
// failure path moves it.
#![allow(clippy::result_large_err)]

use kmemvisor_guest::abi::{Status, layout};
use kmemvisor_guest::aix::raw;
use kmemvisor_guest::conformance::{Outcome, Tally, Why, expect};
use kmemvisor_guest::{Module, ensure, find_module, module_call, modules};

kmemvisor_firmware::entry!(main);

/// The module this guest needs.
const MODULE: &str = "mod-sample";
const PAGE: u64 = layout::PAGE_SIZE;

fn main() -> u32 {
    let mut tally = Tally::default();
    let Some(module) = find_module(MODULE) else {
        let why = format_args!("no module `{MODULE}` in the module table: run `kmemvisor run modules --module {MODULE}`");
        tally.case("the module is loaded", Err(Why::new(why)));
        return tally.finish();
    };
    let image_function = main as fn() -> u32 as usize as u64;
    tally.case("the module table names mod-sample at slot 0 with its entry inside", table(&module));
    tally.case("module_call: the entry returns arg * 3 + 1", call(&module));
    tally.case("pincode/unpincode of a module function pin the module's pages only", pin_module(&module, image_function));
    tally.case("the image and the module have their own pincode counts", apart(&module, image_function));
    tally.case("pincode of module data or past the module: EINVAL", not_code(&module));
    tally.finish()
}

fn table(module: &Module<'_>) -> Outcome {
    ensure!(modules().count() == 1, "{} modules in the table, expected 1", modules().count());
    let slot = layout::module_slot_va(0);
    ensure!(module.base == slot, "base {:#x}, expected slot 0 at {slot:#x}", module.base);
    ensure!(module.size > 0 && module.size.is_multiple_of(PAGE), "size {:#x} is not whole pages", module.size);
    ensure!(module.contains(module.entry), "entry {:#x} is outside {:#x}+{:#x}", module.entry, module.base, module.size);
    ensure!(module.entry != module.base, "the entry is the module header");
    Ok(())
}

fn call(module: &Module<'_>) -> Outcome {
    for (argument, want) in [(14, 43), (0, 1), (u64::MAX, u64::MAX - 1)] {
        // SAFETY: mod-sample's entry is `kmemvisor_modules::entry!`'s
        // extern "C" fn(u64) -> u64, and it takes any argument.
        let got = unsafe { module_call(module, argument) };
        ensure!(got == want, "entry({argument}) returned {got}, expected {want}");
    }
    Ok(())
}

fn pin_module(module: &Module<'_>, image_function: u64) -> Outcome {
    let last_page = module.base + module.size - PAGE;
    expect("unpincode(module entry) before any pincode", raw::unpincode(module.entry).0, Status::EINVAL)?;
    expect("pincode(module entry)", raw::pincode(module.entry).0, Status::OK)?;
    // The module's last page (its data) was pinned with it; the image was not.
    expect("unpin(module's last page) after its pincode", raw::unpin(last_page, 1).0, Status::OK)?;
    expect("pin(module's last page) again", raw::pin(last_page, 1).0, Status::OK)?;
    expect("unpin(image function) after the module's pincode", raw::unpin(image_function, 1).0, Status::EINVAL)?;
    expect("unpincode(module entry)", raw::unpincode(module.entry).0, Status::OK)?;
    expect("a second unpincode(module entry)", raw::unpincode(module.entry).0, Status::EINVAL)?;
    expect("unpin(module's last page) after unpincode", raw::unpin(last_page, 1).0, Status::EINVAL)
}

fn apart(module: &Module<'_>, image_function: u64) -> Outcome {
    expect("pincode(image function)", raw::pincode(image_function).0, Status::OK)?;
    expect("unpincode(module entry) after the image's pincode", raw::unpincode(module.entry).0, Status::EINVAL)?;
    expect("unpin(module entry) after the image's pincode", raw::unpin(module.entry, 1).0, Status::EINVAL)?;
    expect("unpincode(image function)", raw::unpincode(image_function).0, Status::OK)?;
    expect("a second unpincode(image function)", raw::unpincode(image_function).0, Status::EINVAL)
}

fn not_code(module: &Module<'_>) -> Outcome {
    // mod-sample has data (its call counter), and data comes last in a module.
    let data = module.base + module.size - 1;
    expect("pincode(module data)", raw::pincode(data).0, Status::EINVAL)?;
    expect("unpincode(module data)", raw::unpincode(data).0, Status::EINVAL)?;
    expect("pincode(past the module)", raw::pincode(module.base + module.size).0, Status::EINVAL)
}
