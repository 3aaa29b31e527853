//! User address spaces ("processes") and what each vCPU is running on behalf of.
//!
//! A process is an address space whose kernel half is the kernel's own
//! (shared top-level entries) and whose user half holds the memory the guest
//! maps for it. A vCPU is in process context when it has switched to a
//! process, and at interrupt level between `interrupt_enter` and
//! `interrupt_leave`; the seeds' context rules are checked against this.

use std::collections::BTreeMap;

use std::sync::atomic::Ordering;

use kmemvisor_abi::aix::{PROT_EXEC, PROT_WRITE};
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{Service, Status};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::frames::FrameAllocator;
use crate::hypercall::{Caller, Outcome, Reply, refuse};
use crate::memory::zap_frame;
use crate::paging::{AddressSpace, PteFlags, TableFrames};
use crate::state::VmState;
use crate::sync::lock;

/// Most processes alive at once.
pub const MAX_PROCESSES: usize = 64;

/// Page-table frames drawn for one process, so that they go back with it.
struct Recording<'a> {
    frames: &'a mut FrameAllocator,
    taken: &'a mut Vec<u64>,
}

impl TableFrames for Recording<'_> {
    fn table_frame(&mut self) -> Option<u64> {
        let frame = self.frames.table_frame()?;
        self.taken.push(frame);
        Some(frame)
    }
}

/// One user address space.
#[derive(Debug)]
pub struct Process {
    space: AddressSpace,
    /// Mapped user pages and their frames.
    pages: BTreeMap<u64, u64>,
    /// Page-table frames of the user half, the root included.
    tables: Vec<u64>,
}

impl Process {
    /// The address space.
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }
}

/// Every live process.
#[derive(Debug, Default)]
pub struct Processes {
    next: u64,
    all: BTreeMap<u64, Process>,
}

impl Processes {
    /// The process `pid`.
    pub fn get(&self, pid: u64) -> Option<&Process> {
        self.all.get(&pid)
    }

    /// A new process sharing `kernel`'s kernel half; its id.
    pub fn create(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameAllocator,
        kernel: &AddressSpace,
    ) -> Result<u64, Status> {
        if self.all.len() >= MAX_PROCESSES {
            return Err(Status::ENOSPC);
        }
        let mut tables = Vec::new();
        let space = kernel.new_user(memory, &mut Recording { frames, taken: &mut tables }).map_err(|_| Status::ENOMEM)?;
        self.next += 1;
        self.all.insert(self.next, Process { space, pages: BTreeMap::new(), tables });
        Ok(self.next)
    }

    /// Maps `bytes` of zeroed memory at user address `va` (page-rounded) in `pid`.
    pub fn map(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameAllocator,
        pid: u64,
        va: u64,
        bytes: u64,
        prot: u64,
    ) -> Status {
        let Some(process) = self.all.get_mut(&pid) else { return Status::ESRCH };
        let Some((first, end)) = crate::dgux::kernel_memory::page_span(va, bytes) else { return Status::EINVAL };
        if bytes == 0 || first < layout::USER_START || end > layout::USER_END {
            return Status::EINVAL;
        }
        if process.pages.range(first..end).next().is_some() {
            return Status::EEXIST;
        }
        let count = (end - first) / PAGE_SIZE;
        if frames.free_frames() < count + 4 {
            return Status::ENOMEM;
        }
        let Some(new) = frames.allocate(count) else { return Status::ENOMEM };
        let mut flags = PteFlags::USER;
        if prot & PROT_WRITE != 0 {
            flags = flags | PteFlags::WRITABLE;
        }
        if prot & PROT_EXEC == 0 {
            flags = flags | PteFlags::NO_EXECUTE;
        }
        let mut tables = Recording { frames, taken: &mut process.tables };
        for (i, &frame) in new.iter().enumerate() {
            let page = first + i as u64 * PAGE_SIZE;
            let zeroed = memory.write_slice(&[0; PAGE_SIZE as usize], GuestAddress(frame)).is_ok();
            if !zeroed || process.space.map(memory, &mut tables, page, frame, flags).is_err() {
                for &frame in &new[i..] {
                    tables.frames.release(frame);
                }
                return Status::ENOMEM;
            }
            process.pages.insert(page, frame);
        }
        Status::OK
    }

    /// Destroys `pid`: its pages and page tables go back to `frames`.
    pub fn destroy(&mut self, memory: &GuestMemoryMmap, frames: &mut FrameAllocator, pid: u64) -> Status {
        let Some(process) = self.all.remove(&pid) else { return Status::ESRCH };
        for (&page, &frame) in &process.pages {
            if process.space.unmap(memory, page).is_some_and(|old| old.flags.contains(PteFlags::ACCESSED)) {
                zap_frame(memory, frame);
            }
            frames.release(frame);
        }
        for &table in &process.tables {
            frames.release(table);
        }
        Status::OK
    }

    /// Ids of the live processes.
    pub fn ids(&self) -> Vec<u64> {
        self.all.keys().copied().collect()
    }
}

/// What a vCPU runs on behalf of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuContext {
    /// The current process, 0 for none.
    pub pid: u64,
    /// Interrupt-level nesting; 0 in process or kernel context.
    pub interrupt_depth: u32,
}

impl VcpuContext {
    /// Whether the vCPU is at interrupt level.
    pub fn at_interrupt_level(&self) -> bool {
        self.interrupt_depth > 0
    }
}

/// Deepest interrupt-level nesting.
const MAX_INTERRUPT_DEPTH: u32 = 16;

/// Serves `process_*` and `interrupt_*`.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let memory = state.ram.memory();
    let context = &state.contexts[caller.vcpu];
    match service {
        Service::ProcessCreate => {
            let k = &mut *lock(&state.kernel);
            k.processes.create(memory, &mut k.frames, &state.space).into()
        }
        Service::ProcessDestroy => {
            let k = &mut *lock(&state.kernel);
            // A vCPU runs in it, or a driver pinned its memory for I/O.
            let pid = args[0];
            if pid == 0 {
                return Reply::status(Status::ESRCH);
            }
            if k.xmem.holds_process(pid) {
                let why = format!("process_destroy of process {pid}, whose memory is attached for cross-memory: xmdetach first");
                return refuse(state, caller, service, &args[..1], why, Status::EBUSY);
            }
            if state.contexts.iter().any(|c| lock(c).pid == pid)
                || k.aix.pins.pinned_pages_of(pid) > 0
                || k.dgux.wired_pages_of(pid) > 0
            {
                return Reply::status(Status::EBUSY);
            }
            k.dgux.forget_process(pid);
            Reply::status(k.processes.destroy(memory, &mut k.frames, args[0]))
        }
        Service::ProcessSwitch => {
            let k = lock(&state.kernel);
            let root = match args[0] {
                0 => state.space.root(),
                pid => match k.processes.get(pid) {
                    Some(process) => process.space().root(),
                    None => return Reply::status(Status::ESRCH),
                },
            };
            let mut context = lock(context);
            if context.at_interrupt_level() {
                return Reply::status(Status::EPERM);
            }
            context.pid = args[0];
            state.cr3[caller.vcpu].store(root, Ordering::SeqCst);
            Reply::ok(0)
        }
        Service::ProcessMap => {
            let pid = lock(context).pid;
            let k = &mut *lock(&state.kernel);
            Reply::status(k.processes.map(memory, &mut k.frames, pid, args[0], args[1], args[2]))
        }
        Service::InterruptEnter => {
            let mut context = lock(context);
            if context.interrupt_depth >= MAX_INTERRUPT_DEPTH {
                return Reply::status(Status::EINVAL);
            }
            context.interrupt_depth += 1;
            Reply::ok(u64::from(context.interrupt_depth))
        }
        Service::InterruptLeave => {
            let mut context = lock(context);
            if context.interrupt_depth == 0 {
                drop(context);
                return refuse(state, caller, service, &[], "interrupt_leave without interrupt_enter".into(), Status::EINVAL);
            }
            context.interrupt_depth -= 1;
            Reply::ok(u64::from(context.interrupt_depth))
        }
        _ => Reply::status(Status::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestRam;
    use crate::paging::TablePool;

    fn setup() -> (GuestRam, FrameAllocator, AddressSpace) {
        let ram = GuestRam::new(layout::MIN_RAM_SIZE).expect("ram");
        let kernel = AddressSpace::new(ram.memory(), &mut TablePool::new()).expect("kernel space");
        let frames = FrameAllocator::new(layout::FREE_RAM_GPA, layout::MIN_RAM_SIZE, false);
        (ram, frames, kernel)
    }

    #[test]
    fn processes_map_user_memory_and_give_everything_back() {
        let (ram, mut frames, kernel) = setup();
        let m = ram.memory();
        let free = frames.free_frames();
        let mut processes = Processes::default();
        let pid = processes.create(m, &mut frames, &kernel).expect("create");
        assert_eq!(processes.map(m, &mut frames, pid, 0x1000_0010, 5000, PROT_WRITE), Status::OK);
        let space = processes.get(pid).expect("live").space();
        let t = space.translate(m, 0x1000_1fff).expect("second page");
        assert!(t.flags.contains(PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE));
        assert_eq!(processes.map(m, &mut frames, pid, 0x1000_1000, 1, 0), Status::EEXIST);
        assert_eq!(processes.map(m, &mut frames, pid, layout::USER_END - 10, 100, 0), Status::EINVAL);
        assert_eq!(processes.map(m, &mut frames, pid, 0, 100, 0), Status::EINVAL, "below USER_START");
        assert_eq!(processes.map(m, &mut frames, pid, u64::MAX - 10, 100, 0), Status::EINVAL);
        assert_eq!(processes.map(m, &mut frames, 99, 0x2000_0000, 1, 0), Status::ESRCH);
        assert_eq!(kernel.translate(m, 0x1000_0000), None);
        assert_eq!(processes.destroy(m, &mut frames, pid), Status::OK);
        assert_eq!(processes.destroy(m, &mut frames, pid), Status::ESRCH);
        assert_eq!(frames.free_frames(), free, "pages and page tables are all back");
    }

    #[test]
    fn switching_destroying_and_interrupt_level_follow_the_rules() {
        use crate::hypercall::{Request, dispatch};
        let state =
            VmState::new(crate::state::VmConfig::default(), crate::guests::find("hello").expect("hello").elf).expect("state");
        let call = |service: Service, args: [u64; 6]| {
            dispatch(&state, Caller { vcpu: 0, rip: 0 }, Request { number: service.number(), args })
        };
        let reply = |status, value| Outcome::Reply(Reply { status, value });
        assert_eq!(call(Service::ProcessMap, [0x1000_0000, 10, 0, 0, 0, 0]), reply(Status::ESRCH, 0), "no current process");
        let Outcome::Reply(Reply { status: Status::OK, value: pid }) = call(Service::ProcessCreate, [0; 6]) else {
            panic!("create")
        };
        assert_eq!(call(Service::ProcessSwitch, [pid + 1, 0, 0, 0, 0, 0]), reply(Status::ESRCH, 0));
        assert_eq!(call(Service::ProcessSwitch, [pid, 0, 0, 0, 0, 0]), reply(Status::OK, 0));
        let root = state.kernel.lock().expect("lock").processes.get(pid).expect("live").space().root();
        assert_eq!(state.cr3[0].load(Ordering::SeqCst), root);
        assert_eq!(call(Service::ProcessMap, [0x1000_0000, 10, PROT_WRITE, 0, 0, 0]), reply(Status::OK, 0));
        assert_eq!(call(Service::ProcessDestroy, [pid, 0, 0, 0, 0, 0]), reply(Status::EBUSY, 0), "it is current");
        assert_eq!(call(Service::InterruptEnter, [0; 6]), reply(Status::OK, 1));
        assert_eq!(call(Service::ProcessSwitch, [0; 6]), reply(Status::EPERM, 0), "no switching at interrupt level");
        assert_eq!(call(Service::InterruptLeave, [0; 6]), reply(Status::OK, 0));
        assert_eq!(call(Service::InterruptLeave, [0; 6]), reply(Status::EINVAL, 0));
        assert_eq!(state.checker.violations().len(), 1);
        assert_eq!(call(Service::ProcessSwitch, [0; 6]), reply(Status::OK, 0));
        assert_eq!(state.cr3[0].load(Ordering::SeqCst), state.space.root());
        assert_eq!(call(Service::ProcessDestroy, [pid, 0, 0, 0, 0, 0]), reply(Status::OK, 0));
    }

    #[test]
    fn a_process_with_pinned_memory_cannot_be_destroyed() {
        use crate::testing::{ok, state, status};
        use kmemvisor_abi::aix::UIO_USERSPACE;
        let s = state();
        let pid = ok(&s, Service::ProcessCreate, &[]);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::ProcessMap, &[0x1000_0000, 4096, PROT_WRITE]);
        ok(&s, Service::Pinu, &[0x1000_0000, 4096, UIO_USERSPACE]);
        ok(&s, Service::ProcessSwitch, &[0]);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::EBUSY);
        ok(&s, Service::ProcessSwitch, &[pid]);
        ok(&s, Service::Unpinu, &[0x1000_0000, 4096, UIO_USERSPACE]);
        ok(&s, Service::ProcessSwitch, &[0]);
        assert_eq!(status(&s, Service::ProcessDestroy, &[pid]), Status::OK);
    }

    #[test]
    fn there_is_a_limit_on_processes() {
        let (ram, mut frames, kernel) = setup();
        let mut processes = Processes::default();
        for _ in 0..MAX_PROCESSES {
            processes.create(ram.memory(), &mut frames, &kernel).expect("create");
        }
        assert_eq!(processes.create(ram.memory(), &mut frames, &kernel), Err(Status::ENOSPC));
        assert_eq!(processes.ids().len(), MAX_PROCESSES);
    }
}
