// The entry points the VMM starts vCPUs at. Both run at CPL3 with interrupts
// off, RSP 16-byte aligned and nothing pushed, so a `call` leaves the callee
// exactly as the SysV ABI wants it (RSP + 8 aligned). RBP is cleared so that a
// frame-pointer walk stops here.

    .section .text.kmv_entry, "ax"

// vCPU 0: the ELF entry. FS base points at the vCPU page.
    .global _start
    .type _start, @function
_start:
    xor ebp, ebp
    call {boot}                 // runs the program's main, then exit: never returns
    ud2
    .size _start, . - _start

// Other vCPUs, started by Service::VcpuStart(vcpu, kmv_ap_entry, function,
// argument): RDI = function, RSI = argument, already where the first two
// arguments of a call go.
    .global kmv_ap_entry
    .type kmv_ap_entry, @function
kmv_ap_entry:
    xor ebp, ebp
    call {ap_main}              // runs function(argument), then vcpu_done: never returns
    ud2
    .size kmv_ap_entry, . - kmv_ap_entry
