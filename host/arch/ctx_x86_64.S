/* Context switch for x86_64, System V ABI (AMD64 psABI, section 3.2).
 *
 * Callee-saved: rbx, rbp, r12-r15, rsp; the x87 control word and MXCSR's
 * control bits are "callee-saved" too (psABI 3.2.3).  Everything is pushed
 * onto the stack being left; gl_ctx.sp (offset 0) keeps where.
 *
 * Saved frame, from the saved stack pointer upwards:
 *
 *   offset  what
 *   0       MXCSR (4 bytes), then the x87 control word (2 bytes)
 *   8       r15
 *   16      r14
 *   24      r13        a new context: the `arg` of gl_ctx_make
 *   32      r12        a new context: the `entry` of gl_ctx_make
 *   40      rbx
 *   48      rbp
 *   56      return address: where gl_ctx_switch returns to
 *
 * A new context's return address is trampoline, which calls entry(arg,
 * value) with the stack 16-byte aligned before the call, as the ABI wants,
 * and traps if entry returns.
 */
        .text

/* void *gl_ctx_switch(gl_ctx *from [rdi], gl_ctx *to [rsi], void *value [rdx]) */
        .globl  gl_ctx_switch
        .type   gl_ctx_switch, @function
        .p2align 4
gl_ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        movq    %rdx, %rax
        ret
        .cfi_endproc
        .size   gl_ctx_switch, .-gl_ctx_switch

/* void gl_ctx_make(gl_ctx *ctx [rdi], void *stack [rsi], size_t size [rdx],
 *                  gl_ctx_entry entry [rcx], void *arg [r8]) */
        .globl  gl_ctx_make
        .type   gl_ctx_make, @function
        .p2align 4
gl_ctx_make:
        .cfi_startproc
        leaq    (%rsi,%rdx), %rax
        andq    $-16, %rax
        subq    $16, %rax               /* 16-aligned: rsp when trampoline runs */
        movq    $0, (%rax)              /* end of the frame chain */
        movq    $0, 8(%rax)
        subq    $64, %rax               /* the saved frame */
        stmxcsr (%rax)                  /* inherit the creator's FP control */
        fnstcw  4(%rax)
        movq    $0, 8(%rax)
        movq    $0, 16(%rax)
        movq    %r8, 24(%rax)
        movq    %rcx, 32(%rax)
        movq    $0, 40(%rax)
        movq    $0, 48(%rax)
        leaq    trampoline(%rip), %r9
        movq    %r9, 56(%rax)
        movq    %rax, (%rdi)
        movq    $0, 8(%rdi)
        ret
        .cfi_endproc
        .size   gl_ctx_make, .-gl_ctx_make

        .p2align 4
trampoline:
        movq    %r13, %rdi              /* arg */
        movq    %rax, %rsi              /* value of the first switch */
        callq   *%r12
        leaq    returned(%rip), %rdi
        xorl    %eax, %eax
        callq   gl_fatal@PLT
        ud2

/* void *gl_ctx_stackptr(const gl_ctx *ctx) */
        .globl  gl_ctx_stackptr
        .type   gl_ctx_stackptr, @function
gl_ctx_stackptr:
        movq    (%rdi), %rax
        ret
        .size   gl_ctx_stackptr, .-gl_ctx_stackptr

/* void gl_ctx_free(gl_ctx *ctx): nothing is allocated here. */
        .globl  gl_ctx_free
        .type   gl_ctx_free, @function
gl_ctx_free:
        ret
        .size   gl_ctx_free, .-gl_ctx_free

        .section .rodata
returned:
        .string "a context's entry function returned"
        .globl  gl_ctx_impl
        .type   gl_ctx_impl, @object
gl_ctx_impl:
        .string "x86_64"
        .size   gl_ctx_impl, .-gl_ctx_impl

        .section .note.GNU-stack,"",@progbits
