// The entry points the VMM starts vCPUs at. Both run at CPL3 with interrupts
// off, RSP 16-byte aligned and nothing pushed, so a `call` leaves the callee
// exactly as the SysV ABI wants it (RSP + 8 aligned). RBP is cleared so that a
// frame-pointer walk stops here.

    .section .text.kmv_entry, "ax"

// vCPU 0: the ELF entry. FS base points at the vCPU page. The `lea` names a
// symbol only the kmemvisor linker script defines: an image linked without
// the script fails at link time, on a name that says what is missing, rather
// than at run time.
    .global _start
    .type _start, @function
_start:
    lea rax, [rip + add_Tkmemvisor_ld_to_the_link_flags]
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
