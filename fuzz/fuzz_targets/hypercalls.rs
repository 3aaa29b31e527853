//! The VMM's own hypercall surface, without KVM: a hostile guest's call
//! sequences on several vCPUs, dispatched through the real service dispatch
//! on a real `VmState`. After every call the dispatch has returned (a call
//! that never returns is a libFuzzer timeout) without a panic, and every
//! invariant of the memory model holds (`kmemvisor::invariants::check`);
//! a broken one aborts with the call that broke it.
//!
//! The input is a configuration and a list of steps: calls, each from one
//! vCPU with six argument registers and the frame and stack pointers the
//! VMM walks for the call's stack, and the guest's own stores into memory
//! it may write. Arguments are mostly structured — values earlier calls
//! returned, words the VMM wrote into the scratch pages, sizes, and the
//! addresses a hostile guest aims at — and sometimes raw. Which vCPU calls
//! next is the input's, so calls from process context, from interrupt
//! level (`interrupt_enter`) and from no context interleave as the input
//! says, deterministically.

#![no_main]

use arbitrary::Arbitrary;
use kmemvisor::guests;
use kmemvisor::invariants;
use kmemvisor::memory_model::guest_access;
use kmemvisor::report::ExitCause;
use kmemvisor::services::{Caller, Outcome, Request, dispatch};
use kmemvisor::state::{VmConfig, VmState};
use kmemvisor::sync::lock;
use kmemvisor_abi::dgux::VM_PAGE_ALIGNED;
use kmemvisor_abi::dma::DMA_ENGINE_GPA;
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{MAX_VCPUS, Service, Status};
use libfuzzer_sys::fuzz_target;

/// Scratch pages of wired kernel memory the harness gets before the input
/// runs: where descriptors and output words go.
const SCRATCH_PAGES: u64 = 2;
/// Largest guest store of one step.
const MAX_STORE: usize = 64;
/// The guest's call site, as the VMM reports it.
const RIP: u64 = layout::IMAGE_VA + 0x100;

/// One run: how the VM is configured, then the steps.
#[derive(Arbitrary, Debug)]
struct Input {
    /// vCPUs beyond the first, up to `MAX_VCPUS`.
    extra_vcpus: u8,
    /// `--contiguous-frames`.
    contiguous: bool,
    /// `--fail-alloc nth=N` when not 0.
    fail_nth: u8,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A hypercall.
    Call {
        vcpu: u8,
        service: Number,
        args: [Arg; 6],
        /// RBP and RSP at the call, when not the vCPU's own stack top.
        frame: Option<(Arg, Arg)>,
    },
    /// A store of the guest's own, through the address space the vCPU runs in.
    Store { vcpu: u8, at: Arg, bytes: Vec<u8> },
}

/// The service number in RAX.
#[derive(Arbitrary, Debug)]
enum Number {
    /// One of the ABI's services.
    Known(u16),
    /// Anything at all.
    Raw(u64),
}

/// One argument register.
#[derive(Arbitrary, Debug)]
enum Arg {
    Raw(u64),
    Small(u8),
    /// `n` pages, or `n` pages and a few bytes.
    Size(u8, bool),
    /// A value an earlier call returned, moved by a few bytes.
    Returned(u8, i16),
    /// The page of a value an earlier call returned.
    PageOf(u8),
    /// A byte of the scratch pages.
    Scratch(u16),
    /// The word the VMM (or the guest) left at a place in the scratch pages.
    ScratchWord(u16),
    /// An address a hostile guest aims at.
    Place(u8),
}

/// What earlier steps left the guest.
struct Known {
    /// The scratch pages' first byte.
    scratch: u64,
    /// Every reply's value so far (RDX): pointers, ids, frames, counts.
    returned: Vec<u64>,
}

/// Addresses a hostile guest aims at: the ends of the address spaces and of
/// RAM, the frames the VMM keeps for itself (page tables, CPU tables, the
/// image, vCPU pages), the DMA engine's window, and every region's start.
fn places(config: &VmConfig) -> [u64; 24] {
    [
        0,
        u64::MAX,
        layout::PAGE_TABLES_GPA,
        layout::GDT_GPA,
        layout::TSS_GPA,
        layout::IMAGE_GPA,
        layout::vcpu_page_gpa(0),
        DMA_ENGINE_GPA,
        layout::FREE_RAM_GPA,
        config.memory - PAGE_SIZE,
        config.memory,
        layout::USER_START,
        layout::USER_REGIONS_VA,
        layout::USER_END - PAGE_SIZE,
        layout::WIRED_ARENA_VA,
        layout::UNWIRED_ARENA_VA,
        layout::KERNEL_HEAP_VA,
        layout::PINNED_HEAP_VA,
        layout::VM_REGIONS_VA,
        layout::stack_bottom(0),
        layout::vcpu_page_va(0),
        layout::SYSTEM_TABLES_VA,
        layout::BOOT_INFO_VA,
        layout::IMAGE_VA,
    ]
}

impl Arg {
    fn value(&self, state: &VmState, known: &Known) -> u64 {
        let returned = |i: u8| (!known.returned.is_empty()).then(|| known.returned[usize::from(i) % known.returned.len()]);
        let scratch = |at: u16| known.scratch + u64::from(at) % (SCRATCH_PAGES * PAGE_SIZE);
        match *self {
            Arg::Raw(v) => v,
            Arg::Small(v) => u64::from(v),
            Arg::Size(pages, odd) => u64::from(pages) * PAGE_SIZE + if odd { 100 } else { 0 },
            Arg::Returned(i, by) => returned(i).unwrap_or(known.scratch).wrapping_add_signed(i64::from(by)),
            Arg::PageOf(i) => returned(i).unwrap_or(known.scratch) & !(PAGE_SIZE - 1),
            Arg::Scratch(at) => scratch(at),
            Arg::ScratchWord(at) => {
                let word = guest_access::read(state.ram.memory(), &state.space, scratch(at) & !7, 8).ok();
                word.and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
            }
            Arg::Place(i) => {
                let all = places(&state.config);
                all[usize::from(i) % all.len()]
            }
        }
    }
}

fn config(input: &Input) -> VmConfig {
    let mut config = VmConfig {
        memory: layout::MIN_RAM_SIZE,
        vcpus: 1 + usize::from(input.extra_vcpus) % MAX_VCPUS,
        contiguous_frames: input.contiguous,
        ..VmConfig::default()
    };
    if input.fail_nth != 0 {
        config.fail_alloc.nth = Some(u64::from(input.fail_nth));
    }
    config
}

/// A store the guest's CPU makes at `va` from `vcpu`: through the address
/// space it runs in, only where it may write, never into a page hidden from
/// the vCPUs (the CPU would stall there; the KVM tests cover that).
fn store(state: &VmState, vcpu: usize, va: u64, bytes: &[u8]) {
    let memory = state.ram.memory();
    let pid = lock(&state.contexts[vcpu]).pid;
    let k = lock(&state.kernel);
    let space = k.processes.get(pid).map_or(&state.space, |p| p.space());
    let end = va.saturating_add(bytes.len() as u64);
    let mut pages = (va & !(PAGE_SIZE - 1)..end).step_by(PAGE_SIZE as usize);
    if pages.any(|page| space.translate(memory, page).is_some_and(|t| k.frames.hides(t.gpa) > 0)) {
        return;
    }
    let _ = guest_access::write(memory, space, va, bytes);
}

fn run(input: &Input) {
    let hello = guests::find("hello").expect("the bundled hello guest").elf;
    let state = VmState::new(config(input), hello).expect("a VM state");
    let caller = |vcpu: usize| Caller { vcpu, rip: RIP, rbp: 0, rsp: layout::stack_top(vcpu as u64) - 8 };
    let scratch = Request {
        number: Service::VmGetWiredMemory.number(),
        args: [SCRATCH_PAGES * PAGE_SIZE, u64::from(VM_PAGE_ALIGNED), 0, 0, 0, 0],
    };
    let scratch = match dispatch(&state, caller(0), scratch) {
        Outcome::Reply(r) if r.status == Status::OK => r.value,
        // `--fail-alloc nth=1` fails it: the steps run without scratch pages.
        _ => layout::stack_bottom(0),
    };
    let mut known = Known { scratch, returned: Vec::new() };
    for (i, step) in input.steps.iter().enumerate() {
        match step {
            Step::Call { vcpu, service, args, frame } => {
                let vcpu = usize::from(*vcpu) % state.config.vcpus;
                let number = match *service {
                    Number::Known(i) => Service::ALL[usize::from(i) % Service::ALL.len()].number(),
                    Number::Raw(n) => n,
                };
                // vcpu_wait blocks until another vCPU's thread ends its
                // work; this target runs no vCPU threads (the KVM tests do).
                if number == Service::VcpuWait.number() {
                    continue;
                }
                let mut call = caller(vcpu);
                if let Some((rbp, rsp)) = frame {
                    (call.rbp, call.rsp) = (rbp.value(&state, &known), rsp.value(&state, &known));
                }
                let args = args.each_ref().map(|a| a.value(&state, &known));
                let outcome = dispatch(&state, call, Request { number, args });
                if let Err(broken) = invariants::check(&state) {
                    panic!("step {i}: after {number:#x}{args:x?} from vCPU {vcpu} ({outcome:?}): {broken}");
                }
                match outcome {
                    Outcome::Reply(reply) => known.returned.push(reply.value),
                    Outcome::Idle(_) => {}
                    // The VM stops: the run is over. What a guest that
                    // exits leaves behind is checked as at a real exit.
                    Outcome::Stop(cause) => {
                        if matches!(*cause, ExitCause::GuestExit { .. }) {
                            state.record_leaks(&lock(&state.kernel));
                        }
                        return;
                    }
                }
            }
            Step::Store { vcpu, at, bytes } => {
                let vcpu = usize::from(*vcpu) % state.config.vcpus;
                store(&state, vcpu, at.value(&state, &known), &bytes[..bytes.len().min(MAX_STORE)]);
            }
        }
        if state.stop.is_stopping() {
            return;
        }
    }
}

fuzz_target!(|input: Input| run(&input));
