//! Everything the vCPU threads share, built without KVM: guest RAM with the
//! image loaded, the page tables, the CPU tables, and the run's bookkeeping.
//!
//! Being KVM-free, the whole state — and the hypercall dispatch over it — is
//! unit-tested on machines without /dev/kvm.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::time::{Duration, Instant};

use kmemvisor_abi::boot_info::{CMDLINE_MAX, MAX_MODULES};
use kmemvisor_abi::layout::{self, PAGE_SIZE, STACK_SIZE};
use kmemvisor_abi::{BootInfo, MAX_VCPUS, ModuleInfo, VcpuPage};
use vm_memory::{Bytes, GuestAddress};

use crate::checker::{Checker, ViolationKind};
use crate::devices::console::Console;
use crate::devices::dma_engine::{DmaConfig, DmaEngine};
use crate::devices::hiding::Hiding;
use crate::devices::pager::{Pager, PagerError, PagingDir};
use crate::kvm::call_site::CallSite;
use crate::kvm::cpu;
use crate::kvm::pct::{DEFAULT_DEPTH, DEFAULT_STEPS};
use crate::kvm::stop::Stop;
use crate::kvm::vcpu_pool::Schedule;
use crate::kvm::vcpu_pool::VcpuPool;
use crate::loader::{self, Image, LoaderError, Module, ModuleElf, Segment};
use crate::memory_model::aix_vmm::AixVmm;
use crate::memory_model::attachments::Attachments;
use crate::memory_model::heaps::AixMemory;
use crate::memory_model::inject::FailSpec;
use crate::memory_model::kernel_memory::KernelMemory;
use crate::memory_model::ledger::{DeviceWrite, FrameLedger, Role, TransferRanges};
use crate::memory_model::paging::{AddressSpace, PagingError, PteFlags, TablePool};
use crate::memory_model::processes::Processes;
use crate::memory_model::ram::{GuestRam, MemoryError};
use crate::services::CallCounts;
use crate::services::process::VcpuContext;
use crate::snapshot::port::{FuzzPort, MAX_INPUT};
use crate::sync::lock;
use crate::trace::{Event, EventTrace};

/// The kernel regions that grow after boot, each `ARENA_SIZE` long.
const KERNEL_REGIONS: [u64; 4] =
    [layout::WIRED_ARENA_VA, layout::UNWIRED_ARENA_VA, layout::KERNEL_HEAP_VA, layout::PINNED_HEAP_VA];

/// The kernel's memory, behind one lock: exits cost far more than the
/// contention, and one lock keeps every check-then-change whole.
#[derive(Debug)]
pub struct Kernel {
    /// Free guest frames.
    pub frames: FrameLedger,
    /// DG/UX wired and unwired memory.
    pub dgux: KernelMemory,
    /// User address spaces.
    pub processes: Processes,
    /// AIX heaps and pin counts.
    pub aix: AixMemory,
    /// AIX cross-memory attachments.
    pub xmem: Attachments,
    /// AIX virtual memory objects and the `vm_att`/`io_att` regions.
    pub vmm: AixVmm,
    /// The paging devices and the page-outs and page-ins.
    pub pager: Pager,
}

impl Clone for Kernel {
    fn clone(&self) -> Kernel {
        let Kernel { frames, dgux, processes, aix, xmem, vmm, pager } = self;
        Kernel {
            frames: frames.clone(),
            dgux: dgux.clone(),
            processes: processes.clone(),
            aix: aix.clone(),
            xmem: xmem.clone(),
            vmm: vmm.clone(),
            pager: pager.clone(),
        }
    }

    /// Part by part, so that the frame ledger's per-frame tables are copied
    /// into the buffers they have (a snapshot reset).
    fn clone_from(&mut self, source: &Kernel) {
        let Kernel { frames, dgux, processes, aix, xmem, vmm, pager } = source;
        self.frames.clone_from(frames);
        self.dgux.clone_from(dgux);
        self.processes.clone_from(processes);
        self.aix.clone_from(aix);
        self.xmem.clone_from(xmem);
        self.vmm.clone_from(vmm);
        self.pager.clone_from(pager);
    }
}

impl Kernel {
    /// A copy that `clone_from` makes the kernel again cheaply: only the
    /// frames whose ledger entries changed are copied back.
    pub fn save(&mut self) -> Kernel {
        self.frames.name_for_copies();
        self.clone()
    }

    /// The failure injectors (`--fail-alloc`, `--fail-pagein`) without a
    /// seed of their own follow `run_seed` from now on.
    pub fn reseed_injectors(&mut self, run_seed: u64) {
        self.dgux.injector().reseed(run_seed);
        self.pager.pagein_injector().reseed(run_seed);
    }

    /// Whether a failure injector drew from the run's seed already.
    pub fn injectors_drew_from_run_seed(&mut self) -> bool {
        self.dgux.injector().drew_from_run_seed() || self.pager.pagein_injector().drew_from_run_seed()
    }
}

/// How long a vCPU may wait for a hidden page before that is reported too.
pub const DEFAULT_HIDDEN_STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// How a VM is configured.
#[derive(Clone, Debug, PartialEq)]
pub struct VmConfig {
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Number of vCPUs (1–16).
    pub vcpus: usize,
    /// Stop at the first violation.
    pub strict: bool,
    /// The guest's command line.
    pub cmdline: String,
    /// Gets that fail on purpose (`--fail-alloc`).
    pub fail_alloc: FailSpec,
    /// Page-ins that fail on purpose (`--fail-pagein`).
    pub fail_pagein: FailSpec,
    /// Where paging devices' files go (`--paging-dir`); `None`: a
    /// temporary directory removed with the VM.
    pub paging_dir: Option<PathBuf>,
    /// Most bytes of object pages in memory at once (`--memory-limit`).
    pub memory_limit: Option<u64>,
    /// Hand out physically contiguous frames (`--contiguous-frames`).
    pub contiguous_frames: bool,
    /// Watch the pages DMA transfers write for double fetches (unless `--no-double-fetch-watch`).
    pub double_fetch_watch: bool,
    /// How long a vCPU may wait for a hidden page before it is reported (`--hidden-stall-timeout`).
    pub hidden_stall_timeout: Duration,
    /// The DMA engine's latency, jitter and seed.
    pub dma: DmaConfig,
    /// How the vCPUs share the host (`--schedule`, `--seed`).
    pub schedule: Schedule,
    /// Keep the event trace's events, to write them out (`--trace`).
    pub keep_trace: bool,
    /// Count the behaviour the run reaches, as fuzzing feedback ([`crate::coverage`]).
    pub coverage: bool,
    /// Guest modules to load next to the image (`--module`), in this order.
    pub modules: Vec<ModuleElf>,
    /// What `fuzz_input` gives (`--input`; a fuzzing iteration's input).
    pub input: Arc<[u8]>,
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            memory: layout::DEFAULT_RAM_SIZE,
            vcpus: 1,
            strict: false,
            cmdline: String::new(),
            fail_alloc: FailSpec::default(),
            fail_pagein: FailSpec::default(),
            paging_dir: None,
            memory_limit: None,
            contiguous_frames: false,
            double_fetch_watch: true,
            hidden_stall_timeout: DEFAULT_HIDDEN_STALL_TIMEOUT,
            dma: DmaConfig::default(),
            schedule: Schedule::Serial { seed: 1, depth: DEFAULT_DEPTH, steps: DEFAULT_STEPS },
            keep_trace: false,
            coverage: false,
            modules: Vec::new(),
            input: Arc::from(Vec::new()),
        }
    }
}

/// Why the VM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The vCPU count is out of range.
    #[error("{0} vCPUs asked for; kmemvisor runs 1 to {MAX_VCPUS}")]
    VcpuCount(usize),
    /// The command line does not fit the boot-info page.
    #[error("The guest command line is {0} bytes; at most {CMDLINE_MAX} fit")]
    CmdlineTooLong(usize),
    /// Guest RAM could not be created.
    #[error("Cannot create guest RAM")]
    Memory(#[from] MemoryError),
    /// The image could not be loaded.
    #[error("Cannot load the guest image")]
    Loader(#[from] LoaderError),
    /// A module could not be loaded.
    #[error("Cannot load the module `{name}`")]
    Module {
        /// The module's name.
        name: String,
        /// Why.
        #[source]
        source: LoaderError,
    },
    /// More modules than the module table holds.
    #[error("{0} modules asked for; at most {MAX_MODULES} fit (one per module slot)")]
    ModuleCount(usize),
    /// The page tables could not be built.
    #[error("Cannot build the guest page tables")]
    Paging(#[from] PagingError),
    /// The fuzzing input is longer than `fuzz_input` gives.
    #[error("The input is {0} bytes; at most {MAX_INPUT} are given to the guest")]
    InputTooLong(usize),
    /// A fixed region could not be written.
    #[error("Cannot write the {0} into guest RAM")]
    Write(&'static str),
    /// The paging directory cannot be used.
    #[error("Cannot set up the pager")]
    Pager(#[from] PagerError),
}

/// The state shared by the vCPU threads and the main thread.
#[derive(Debug)]
pub struct VmState {
    /// Guest RAM.
    pub ram: GuestRam,
    /// The kernel address space (the only one so far).
    pub space: AddressSpace,
    /// The loaded image.
    pub image: Image,
    /// The loaded modules, in the order of `config.modules`.
    pub modules: Vec<Module>,
    /// The configuration it was built from.
    pub config: VmConfig,
    /// The guest console.
    pub console: Console,
    /// Calls per service.
    pub calls: CallCounts,
    /// Recorded violations.
    pub checker: Checker,
    /// Every event that can decide a verdict, hashed (and kept for `--trace`).
    pub trace: EventTrace,
    /// What each vCPU is doing.
    pub vcpus: VcpuPool,
    /// The stop request.
    pub stop: Stop,
    /// When a vCPU first entered the guest.
    pub first_entry: OnceLock<Instant>,
    /// The kernel's memory: frames, DG/UX memory, processes.
    pub kernel: Mutex<Kernel>,
    /// What each vCPU runs on behalf of.
    pub contexts: Vec<Mutex<VcpuContext>>,
    /// Whether the guest registered a device-interrupt handler (`interrupt_register`).
    pub interrupt_handler: AtomicBool,
    /// The CR3 each vCPU must run with (its process's, or the kernel's);
    /// the vCPU loads it before it next enters the guest.
    pub cr3: Vec<AtomicU64>,
    /// Pages hidden from the vCPUs (`xmemdma`).
    pub hiding: Hiding,
    /// Where RIP points at a hypercall's exit: the `out` or past it.
    pub call_site: CallSite,
    /// The thread id of each vCPU thread (0 until it starts): a stalled
    /// thread is known to the VMM by its id only.
    pub vcpu_tids: Vec<AtomicU32>,
    /// The DMA engine.
    pub dma: DmaEngine,
    /// Whether the guest has had a page trapped (see [`VmState::note_trap_used`]).
    pub(crate) trap_used: AtomicBool,
    /// The fuzzing snapshot point and input (`fuzz_snapshot`, `fuzz_input`).
    pub fuzz: FuzzPort,
}

impl VmState {
    /// Builds guest RAM, loads `elf` and lays out everything a vCPU needs.
    pub fn new(config: VmConfig, elf: &[u8]) -> Result<VmState, SetupError> {
        if !(1..=MAX_VCPUS).contains(&config.vcpus) {
            return Err(SetupError::VcpuCount(config.vcpus));
        }
        if config.cmdline.len() > CMDLINE_MAX {
            return Err(SetupError::CmdlineTooLong(config.cmdline.len()));
        }
        if config.modules.len() > MAX_MODULES {
            return Err(SetupError::ModuleCount(config.modules.len()));
        }
        if config.input.len() > MAX_INPUT {
            return Err(SetupError::InputTooLong(config.input.len()));
        }
        let ram = GuestRam::new(config.memory)?;
        let image = loader::load(ram.memory(), elf)?;
        let mut modules: Vec<Module> = Vec::with_capacity(config.modules.len());
        for module in &config.modules {
            let loaded = loader::load_module(ram.memory(), module, &image, &modules)
                .map_err(|source| SetupError::Module { name: module.name.clone(), source })?;
            modules.push(loaded);
        }
        let mut pool = TablePool::new();
        let space = AddressSpace::new(ram.memory(), &mut pool)?;
        let memory = ram.memory();
        let write = |what, bytes: &[u8], gpa| memory.write_slice(bytes, GuestAddress(gpa)).map_err(|_| SetupError::Write(what));
        let map = |pool: &mut TablePool, va, gpa, pages, flags| space.map_range(memory, pool, va, gpa, pages, flags);

        write("GDT", &cpu::gdt_frame(), layout::GDT_GPA)?;
        write("IDT", &cpu::idt_frame(image.vectors), layout::IDT_GPA)?;
        write("TSS", &cpu::tss_frames(), layout::TSS_GPA)?;
        write("boot info", &(config.cmdline.len() as u64).to_le_bytes(), layout::BOOT_INFO_GPA)?;
        write("boot info", config.cmdline.as_bytes(), layout::BOOT_INFO_GPA + 8)?;
        let table = layout::BOOT_INFO_GPA + std::mem::offset_of!(BootInfo, modules) as u64;
        write(
            "boot info",
            &(modules.len() as u64).to_le_bytes(),
            layout::BOOT_INFO_GPA + std::mem::offset_of!(BootInfo, module_count) as u64,
        )?;
        for (i, m) in modules.iter().enumerate() {
            let row = ModuleInfo::new(&m.name, m.base, m.size, m.entry).to_bytes();
            write("module table", &row, table + (i * row.len()) as u64)?;
        }
        // Only the CPU reads the descriptor tables: supervisor pages.
        map(&mut pool, layout::SYSTEM_TABLES_VA, layout::GDT_GPA, 1, PteFlags::WRITABLE | PteFlags::NO_EXECUTE)?;
        map(&mut pool, layout::SYSTEM_TABLES_VA + PAGE_SIZE, layout::IDT_GPA, 1, PteFlags::NO_EXECUTE)?;
        map(&mut pool, layout::TSS_VA, layout::TSS_GPA, layout::TSS_FRAMES, PteFlags::NO_EXECUTE)?;
        map(&mut pool, layout::BOOT_INFO_VA, layout::BOOT_INFO_GPA, 1, PteFlags::USER | PteFlags::NO_EXECUTE)?;
        let data = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        for n in 0..config.vcpus as u64 {
            let page = VcpuPage {
                vcpu_id: n,
                vcpu_count: config.vcpus as u64,
                stack_bottom: layout::stack_bottom(n),
                stack_top: layout::stack_top(n),
            };
            let fields = [page.vcpu_id, page.vcpu_count, page.stack_bottom, page.stack_top];
            let bytes: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
            write("vCPU page", &bytes, layout::vcpu_page_gpa(n))?;
            map(&mut pool, layout::vcpu_page_va(n), layout::vcpu_page_gpa(n), 1, data)?;
            map(&mut pool, layout::stack_bottom(n), layout::stack_gpa(n), STACK_SIZE / PAGE_SIZE, data)?;
        }
        for segment in image.segments.iter().chain(modules.iter().flat_map(|m| &m.segments)) {
            map(&mut pool, segment.va, segment.gpa, segment.pages, segment.flags)?;
        }
        // User address spaces copy the kernel half's top level once: every
        // kernel region must have its entries before the first one exists.
        for region in KERNEL_REGIONS {
            for va in (region..region + layout::ARENA_SIZE).step_by(1 << 39) {
                space.reserve_top_level(memory, &mut pool, va)?;
            }
        }
        // The vm_att and io_att regions share one top-level entry (layout.rs checks it).
        space.reserve_top_level(memory, &mut pool, layout::VM_REGIONS_VA)?;
        let fuzz = FuzzPort::default();
        fuzz.set_input(config.input.clone());
        Ok(VmState {
            console: Console::new(config.vcpus).map_err(|_| SetupError::Write("console"))?,
            calls: CallCounts::default(),
            checker: Checker::new(config.strict),
            trace: EventTrace::new(config.keep_trace, config.coverage),
            vcpus: VcpuPool::new(config.vcpus, config.schedule),
            stop: Stop::new().map_err(|_| SetupError::Write("stop"))?,
            first_entry: OnceLock::new(),
            kernel: Mutex::new(Kernel {
                frames: fixed_frames(
                    FrameLedger::new(layout::FREE_RAM_GPA, config.memory, config.contiguous_frames),
                    &image,
                    &modules,
                    config.vcpus,
                ),
                // The DMA engine's seed is the run's `--seed`.
                dgux: KernelMemory::new(config.fail_alloc.clone(), config.dma.seed),
                pager: Pager::new(
                    PagingDir::new(config.paging_dir.as_deref())?,
                    config.fail_pagein.clone(),
                    config.dma.seed,
                    config.memory_limit.map(|bytes| (bytes / PAGE_SIZE).max(1)),
                ),
                processes: Processes::default(),
                aix: AixMemory::default(),
                xmem: Attachments::default(),
                vmm: AixVmm::default(),
            }),
            contexts: (0..config.vcpus).map(|_| Mutex::new(VcpuContext::default())).collect(),
            interrupt_handler: AtomicBool::new(false),
            cr3: (0..config.vcpus).map(|_| AtomicU64::new(space.root())).collect(),
            hiding: Hiding::new(&ram, config.hidden_stall_timeout),
            call_site: CallSite::default(),
            vcpu_tids: (0..config.vcpus).map(|_| AtomicU32::new(0)).collect(),
            dma: DmaEngine::new(config.dma),
            trap_used: AtomicBool::new(false),
            fuzz,

            ram,
            space,
            image,
            modules,
            config,
        })
    }
}

/// The ledger with the role of every fixed frame, the one place that says
/// what each part of the layout below free RAM is.
fn fixed_frames(mut ledger: FrameLedger, image: &Image, modules: &[Module], vcpus: usize) -> FrameLedger {
    ledger.assign(layout::GDT_GPA, 1, Role::CpuTables);
    ledger.assign(layout::IDT_GPA, 1, Role::CpuTables);
    ledger.assign(layout::TSS_GPA, layout::TSS_FRAMES, Role::CpuTables);
    ledger.assign(layout::BOOT_INFO_GPA, 1, Role::BootInfo);
    ledger.assign(layout::PAGE_TABLES_GPA, layout::PAGE_TABLES_SIZE / PAGE_SIZE, Role::PageTable);
    for n in 0..vcpus as u64 {
        ledger.assign(layout::vcpu_page_gpa(n), 1, Role::VcpuPage);
        ledger.assign(layout::stack_gpa(n), STACK_SIZE / PAGE_SIZE, Role::Stack);
    }
    for segment in &image.segments {
        ledger.assign(segment.gpa, segment.pages, Role::Image);
    }
    for segment in modules.iter().flat_map(|m| &m.segments) {
        ledger.assign(segment.gpa, segment.pages, Role::Module);
    }
    ledger
}

impl VmState {
    /// The loaded objects' segments: the main image's (object 0), then each
    /// module's (object 1, 2, … in load order).
    pub fn objects(&self) -> impl Iterator<Item = &[Segment]> {
        std::iter::once(&self.image.segments[..]).chain(self.modules.iter().map(|m| &m.segments[..]))
    }

    /// Records a violation; under `--strict` it stops the VM. Every
    /// violation goes through here (`crate::checker::Checker::record` decides).
    pub fn record_violation(&self, violation: crate::checker::Violation) {
        let event = Event::Violation { vcpu: violation.vcpu, service: violation.service.clone() };
        self.trace.record(self.dma.now(), event);
        self.checker.record(violation, &self.stop);
    }

    /// Records what a guest that exited by itself left behind: memory still
    /// allocated, wired, pinned, attached or hidden, and transfers still
    /// queued. Under `--strict` only the first leak is kept; the cause stays
    /// the guest's exit.
    pub fn record_leaks(&self, kernel: &Kernel) {
        let leaks = kernel
            .dgux
            .leaks(&kernel.frames)
            .into_iter()
            .chain(kernel.aix.leaks(&kernel.frames, &kernel.dgux.origins))
            .chain(kernel.xmem.leaks())
            .chain(self.dma.leaks());
        for leak in leaks {
            self.record_violation(crate::checker::Violation::from(leak));
        }
    }

    /// Records `event` in the trace at the current device time.
    pub fn trace(&self, event: Event) {
        self.trace.record(self.dma.now(), event);
    }

    /// Notes that a page is about to be trapped (hidden, watched for a
    /// double fetch, or paged out): a snapshot point after that is refused.
    pub fn note_trap_used(&self) {
        self.trap_used.store(true, Ordering::SeqCst);
    }

    /// The pages a transfer writes could not be watched for double fetches
    /// (or given back): the check cannot be kept, so the run stops.
    fn cannot_watch(&self, e: crate::devices::hiding::HideError) {
        let what = format!("cannot watch the pages a DMA transfer writes: {e}");
        self.stop.request(crate::report::ExitCause::VmFailure { vcpu: 0, what, registers: None });
    }

    /// Whether a page was trapped (hidden, watched or paged out) in this run.
    pub fn trap_used(&self) -> bool {
        self.trap_used.load(Ordering::SeqCst)
    }

    /// Sends the kick signal to vCPU `vcpu`'s thread: if it is in KVM_RUN, it
    /// leaves it before it runs another guest instruction.
    pub fn kick(&self, vcpu: usize) -> std::io::Result<()> {
        let tid = self.vcpu_tids.get(vcpu).map_or(0, |t| t.load(Ordering::Relaxed));
        if tid == 0 {
            return Ok(());
        }
        // SAFETY: tgkill with our own pid and a thread id of ours; the signal
        // has a handler that does nothing (kvm::machine installs it).
        let sent =
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, crate::kvm::vcpu::kick_signal()) };
        if sent == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }

    /// The CPU time vCPU `vcpu`'s thread has used (guest time included), if
    /// its thread runs.
    pub fn cpu_time(&self, vcpu: usize) -> Option<Duration> {
        let tid = self.vcpu_tids.get(vcpu).map_or(0, |t| t.load(Ordering::Relaxed));
        if tid == 0 {
            return None;
        }
        // Linux's clock id of one thread's CPU time: MAKE_THREAD_CPUCLOCK(tid,
        // CPUCLOCK_SCHED), as glibc's pthread_getcpuclockid builds it.
        let clock = (!(tid as libc::clockid_t) << 3) | 6;
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a valid timespec to write; a clock id of a thread
        // that has ended is refused with EINVAL, not misused.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return None;
        }
        Some(Duration::new(u64::try_from(now.tv_sec).ok()?, u32::try_from(now.tv_nsec).ok()?))
    }

    /// The vCPU whose thread has id `tid`.
    pub fn vcpu_of_thread(&self, tid: u32) -> Option<usize> {
        self.vcpu_tids.iter().position(|t| tid != 0 && t.load(Ordering::Relaxed) == tid)
    }
}

impl crate::devices::dma_engine::DmaHost for VmState {
    fn memory(&self) -> &crate::memory_model::ram::GuestMemoryMmap {
        self.ram.memory()
    }

    fn handed_off(&self, page: u64) -> bool {
        lock(&self.kernel).frames.handed_off(page)
    }

    fn refusal(&self, page: u64) -> Option<String> {
        lock(&self.kernel).frames.dma_refusal(page).map(|e| e.to_string())
    }

    fn violation(&self, kind: ViolationKind, access: crate::devices::dma_engine::Access, args: &[u64], message: String) {
        let violation = crate::checker::Violation::new(kind, "dma", args, access.vcpu, access.rip, message);
        self.record_violation(violation.with_stack(vec![access.site()]));
    }

    fn begin_transfer(&self, ranges: &TransferRanges) {
        let k = &mut *lock(&self.kernel);
        k.frames.begin_transfer(ranges);
        let written = ranges.written_frames();
        // A transfer that writes a frame no device may touch is refused
        // whole when it runs: it writes nothing, so nothing is watched (nor
        // trapped: a page table or a CPU table must stay the vCPUs').
        let refused = || written.clone().step_by(PAGE_SIZE as usize).any(|page| k.frames.dma_refusal(page).is_some());
        if self.config.double_fetch_watch && !written.is_empty() && !refused() {
            self.note_trap_used();
            if let Err(e) = self.hiding.watch(written, |page| k.frames.device_write(page).is_none()) {
                self.cannot_watch(e);
            }
        }
    }

    fn raise_interrupt(&self, vcpu: usize, channel: usize) {
        if !self.interrupt_handler.load(Ordering::SeqCst) {
            let message = format!(
                "the DMA engine's channel {channel} raised its completion interrupt, but no handler is registered \
                 (interrupt_register): the interrupt is dropped"
            );
            let v = crate::checker::Violation::new(ViolationKind::InterruptNoHandler, "dma", &[channel as u64], vcpu, 0, message);
            self.record_violation(v);
            return;
        }
        if let Some(context) = self.contexts.get(vcpu) {
            lock(context).interrupt_pending = true;
        }
    }

    fn transfer_ran(&self, channel: usize, rung: u64, error: u64, registers: [u64; 4]) {
        self.trace(Event::Transfer { channel, rung, error, registers });
    }

    fn end_transfer(&self, ranges: &TransferRanges, wrote: bool, channel: usize, doorbell: crate::devices::dma_engine::Access) {
        let k = &mut *lock(&self.kernel);
        k.frames.end_transfer(ranges);
        let written = ranges.written_frames();
        if wrote && let Some(range) = &ranges.writes {
            // The doorbell's site, for a lost modification's message; the channel is one of a few.
            let write = DeviceWrite {
                channel: u32::try_from(channel).unwrap_or(u32::MAX),
                doorbell: doorbell.site(),
                unmarked_end: None,
            };
            k.frames.device_wrote(range, write);
        }
        if self.config.double_fetch_watch
            && !written.is_empty()
            && let Err(e) = self.hiding.device_wrote(written, wrote, |page| k.frames.write_pending(page))
        {
            self.cannot_watch(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use kmemvisor_abi::ModuleInfo;
    use kmemvisor_abi::boot_info::MAX_MODULES;
    use kmemvisor_abi::layout::{self, PAGE_SIZE};
    use vm_memory::{Bytes, GuestAddress};

    use super::{BootInfo, SetupError, VmConfig, VmState};
    use crate::memory_model::paging::PteFlags;
    use crate::testing::{sample_module, state, state_with_module};

    fn read_u64(s: &VmState, gpa: u64) -> u64 {
        s.ram.memory().read_obj::<u64>(GuestAddress(gpa)).expect("read")
    }

    #[test]
    fn a_module_is_mapped_with_its_flags_and_listed_in_the_boot_info_page() {
        let s = state_with_module();
        let module = &s.modules[0];
        assert_eq!((module.name.as_str(), module.base), ("mod-sample", layout::module_slot_va(0)));
        for segment in &module.segments {
            for page in 0..segment.pages {
                let t = s.space.translate(s.ram.memory(), segment.va + page * PAGE_SIZE).expect("mapped");
                assert_eq!((t.gpa, t.flags.contains(PteFlags::NO_EXECUTE)), (segment.gpa + page * PAGE_SIZE, !segment.is_code()));
                assert_eq!(t.flags.contains(PteFlags::WRITABLE), segment.flags.contains(PteFlags::WRITABLE));
            }
        }
        assert_eq!(read_u64(&s, layout::BOOT_INFO_GPA + offset_of!(BootInfo, module_count) as u64), 1);
        let row = layout::BOOT_INFO_GPA + offset_of!(BootInfo, modules) as u64;
        let mut bytes = [0u8; 64];
        s.ram.memory().read_slice(&mut bytes, GuestAddress(row)).expect("read");
        assert_eq!(bytes, ModuleInfo::new("mod-sample", module.base, module.size, module.entry).to_bytes());
        assert_eq!(s.objects().count(), 2);
    }

    #[test]
    fn without_modules_the_table_is_empty() {
        let s = state();
        assert!(s.modules.is_empty());
        assert_eq!(read_u64(&s, layout::BOOT_INFO_GPA + offset_of!(BootInfo, module_count) as u64), 0);
        assert_eq!(s.objects().count(), 1);
    }

    #[test]
    fn module_errors_name_the_module() {
        let hello = crate::guests::find("hello").expect("hello").elf;
        let twice = VmConfig { modules: vec![sample_module(), sample_module()], ..VmConfig::default() };
        let err = VmState::new(twice, hello).expect_err("the same slot twice");
        assert!(matches!(&err, SetupError::Module { name, .. } if name == "mod-sample"), "{err:?}");
        let many = VmConfig { modules: vec![sample_module(); MAX_MODULES + 1], ..VmConfig::default() };
        assert!(matches!(VmState::new(many, hello), Err(SetupError::ModuleCount(9))));
        let mut not_a_module = sample_module();
        not_a_module.elf = hello.to_vec();
        let err = VmState::new(VmConfig { modules: vec![not_a_module], ..VmConfig::default() }, hello).expect_err("an image");
        let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
        assert!(source.contains("outside the module region"), "{source}");
    }

    /// Programs channel 0 to fill the page at `to` from device memory and rings it.
    fn ring_fill(s: &VmState, to: u64) {
        use kmemvisor_abi::dma::*;
        let access = crate::devices::dma_engine::Access { vcpu: 0, rip: 0x1000, completed: true };
        for (reg, value) in [(REG_SOURCE, 0), (REG_DESTINATION, to), (REG_LENGTH, PAGE_SIZE), (REG_DIRECTION, DIR_FROM_DEVICE)] {
            s.dma.mmio_write(s, access, reg, 8, value);
        }
        s.dma.mmio_write(s, access, REG_DOORBELL, 8, 1);
    }

    #[test]
    fn a_transfer_is_watched_for_double_fetches_unless_it_writes_a_frame_no_device_may_touch() {
        let s = state();
        let va = crate::testing::ok(
            &s,
            kmemvisor_abi::Service::VmGetWiredMemory,
            &[PAGE_SIZE, u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED)],
        );
        let frame = s.space.translate(s.ram.memory(), va).expect("mapped").gpa;
        ring_fill(&s, frame);
        assert!(s.hiding.is_trapped(frame) && s.hiding.is_watched(frame), "watched from the doorbell");
        s.dma.advance(&s);
        s.dma.advance(&s);
        assert!(s.hiding.hides_nothing(), "written before any touch: given back");
        ring_fill(&s, layout::PAGE_TABLES_GPA);
        assert!(s.hiding.hides_nothing(), "a page table is never trapped for a transfer");
        s.dma.advance(&s);
        s.dma.advance(&s);
        assert_eq!(crate::testing::kinds(&s), ["dma.forbidden-frame"]);
        let unwatched = crate::testing::state_with(VmConfig { double_fetch_watch: false, ..VmConfig::default() });
        let va = crate::testing::ok(
            &unwatched,
            kmemvisor_abi::Service::VmGetWiredMemory,
            &[PAGE_SIZE, u64::from(kmemvisor_abi::dgux::VM_PAGE_ALIGNED)],
        );
        ring_fill(&unwatched, unwatched.space.translate(unwatched.ram.memory(), va).expect("mapped").gpa);
        assert!(unwatched.hiding.hides_nothing(), "--no-double-fetch-watch");
    }
}
