/* Context switch for AArch64, AAPCS64 (Procedure Call Standard for the Arm
 * 64-bit Architecture, section 6.1).
 *
 * Callee-saved: x19-x28, x29 (fp), x30 (lr), sp, and the low 64 bits of
 * v8-v15 (d8-d15).  Everything is stored on the stack being left; gl_ctx.sp
 * (offset 0) keeps where.  FPCR (rounding mode, flush-to-zero) is global
 * state for AAPCS64, but each context keeps its own, as on x86_64 (MXCSR,
 * x87 control word) and with ucontext (glibc saves FPCR): a greenthread
 * that calls fesetround does not change the others' arithmetic.  Writing
 * FPCR can stall, so it is written only when it differs.
 *
 * Saved frame, from the saved stack pointer upwards (176 bytes):
 *
 *   offset  what
 *   0       x19, x20   a new context: entry, arg
 *   16      x21, x22
 *   32      x23, x24
 *   48      x25, x26
 *   64      x27, x28
 *   80      x29, x30   x30: where gl_ctx_switch returns to
 *   96      d8,  d9
 *   112     d10, d11
 *   128     d12, d13
 *   144     d14, d15
 *   160     FPCR, then 8 bytes of padding
 *
 * A new context's x30 is trampoline, which calls entry(arg, value) and
 * traps if it returns.
 */
        .text

/* void *gl_ctx_switch(gl_ctx *from [x0], gl_ctx *to [x1], void *value [x2]) */
        .globl  gl_ctx_switch
        .type   gl_ctx_switch, %function
        .p2align 4
gl_ctx_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x9, [sp, #160]
        mrs     x10, fpcr
        cmp     x9, x10
        b.eq    1f
        msr     fpcr, x9
1:      add     sp, sp, #176
        mov     x0, x2
        ret
        .size   gl_ctx_switch, .-gl_ctx_switch

/* void gl_ctx_make(gl_ctx *ctx [x0], void *stack [x1], size_t size [x2],
 *                  gl_ctx_entry entry [x3], void *arg [x4]) */
        .globl  gl_ctx_make
        .type   gl_ctx_make, %function
        .p2align 4
gl_ctx_make:
        add     x9, x1, x2
        and     x9, x9, #~15
        sub     x9, x9, #176
        mov     x10, #0
        stp     x3,  x4,  [x9, #0]
        stp     x10, x10, [x9, #16]
        stp     x10, x10, [x9, #32]
        stp     x10, x10, [x9, #48]
        stp     x10, x10, [x9, #64]
        adr     x11, trampoline
        stp     x10, x11, [x9, #80]
        stp     x10, x10, [x9, #96]
        stp     x10, x10, [x9, #112]
        stp     x10, x10, [x9, #128]
        stp     x10, x10, [x9, #144]
        mrs     x11, fpcr               /* inherit the creator's FP control */
        stp     x11, x10, [x9, #160]
        str     x9, [x0]
        str     x10, [x0, #8]
        ret
        .size   gl_ctx_make, .-gl_ctx_make

        .p2align 4
trampoline:
        mov     x1, x0                  /* value of the first switch */
        mov     x0, x20                 /* arg */
        blr     x19
        adrp    x0, returned
        add     x0, x0, :lo12:returned
        bl      gl_fatal
        brk     #0

/* void *gl_ctx_stackptr(const gl_ctx *ctx) */
        .globl  gl_ctx_stackptr
        .type   gl_ctx_stackptr, %function
gl_ctx_stackptr:
        ldr     x0, [x0]
        ret
        .size   gl_ctx_stackptr, .-gl_ctx_stackptr

/* void gl_ctx_free(gl_ctx *ctx): nothing is allocated here. */
        .globl  gl_ctx_free
        .type   gl_ctx_free, %function
gl_ctx_free:
        ret
        .size   gl_ctx_free, .-gl_ctx_free

        .section .rodata
returned:
        .string "a context's entry function returned"
        .globl  gl_ctx_impl
        .type   gl_ctx_impl, %object
gl_ctx_impl:
        .string "aarch64"
        .size   gl_ctx_impl, .-gl_ctx_impl

        .section .note.GNU-stack,"",%progbits
