// The vectors: 32 stubs, one per CPU exception, and vector 32, device
// interrupts (image::INTERRUPT_VECTOR); VECTOR_STRIDE bytes
// apart from kmv_vectors (the header's `vectors` field). The VMM's IDT gate n
// points at kmv_vectors + n * VECTOR_STRIDE with the user code segment, so a
// stub runs at CPL3 on the stack that faulted: there is no stack switch.
//
// The CPU pushes SS, RSP, RFLAGS, CS, RIP and, for some vectors, an error code.
// Each stub makes the frame uniform (a 0 where the CPU pushes no error code),
// pushes its vector number and jumps to kmv_vector_common, which reports the
// exception to the VMM with Service::Exception. The VMM ends the VM; it never
// resumes the vCPU, so nothing is restored.

// The vectors for which the CPU pushes an error code: #DF 8, #TS 10, #NP 11,
// #SS 12, #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30.
.set KMV_ERROR_CODE_VECTORS, (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30)

.macro kmv_vector n
    .balign {stride}
kmv_vector_\n:
    .if ((KMV_ERROR_CODE_VECTORS >> \n) & 1) == 0
    push 0                      // no error code from the CPU: push one
    .endif
    push \n
    jmp kmv_vector_common       // at most 2 + 2 + 5 bytes: fits the stride
.endm
// (A stub longer than the stride would push the next one a whole stride on;
// the linker script checks that the 33 stubs take exactly 33 strides.)

    .section .text.kmv_vectors, "ax"
    .balign {stride}
    .global kmv_vectors
kmv_vectors:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    kmv_vector \n
.endr
    .balign {stride}
kmv_vector_32:
    jmp kmv_interrupt_common
    .balign {stride}
    .global kmv_vectors_end
kmv_vectors_end:

// The stack now holds, from RSP up: vector, error code, RIP, CS, RFLAGS, RSP, SS.
kmv_vector_common:
    mov rdi, [rsp + 0]          // vector
    mov rsi, [rsp + 8]          // error code
    mov rcx, [rsp + 16]         // RIP of the faulting instruction
    mov r8, [rsp + 24]          // CS
    mov r9, [rsp + 32]          // RFLAGS
    mov r10, [rsp + 40]         // RSP at the fault
    mov eax, {exception}        // Service::Exception
    mov edx, {port}             // HYPERCALL_PORT
    out dx, eax
2:
    jmp 2b                      // the VMM never resumes a reported exception

// Vector 32, a device interrupt the VMM injected at an exit boundary, on the
// interrupted code's stack (CPL3 to CPL3: no stack switch; the guest is built
// without a red zone). The CPU pushed SS, RSP, RFLAGS, CS, RIP and cleared
// IF. Every register the SysV ABI lets a call clobber is saved, the stack is
// aligned for the call, the guest library's dispatcher runs the handler, and
// `interrupt_return` tells the VMM the handler is done (the vCPU leaves
// interrupt level) before `iretq` resumes the interrupted code.
kmv_interrupt_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rbp, rsp
    and rsp, -16
    call {dispatch}
    mov rsp, rbp
    pop rbp
    mov eax, {interrupt_return}  // Service::InterruptReturn
    mov edx, {port}
    out dx, eax
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    iretq
