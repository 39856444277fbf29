/* Target for the context-function tests: typed parameters for the DWARF tests, a string
 * marker argument, and a nop first instruction in every probed function (cheap uprobe hits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pair { long a, b, c; };

unsigned short ctx_note_semaphore __attribute__((section(".probes"), used)) = 0;

/* One SDT marker written out by hand (sys/sdt.h is not always installed): (int, const char *). */
#define CTX_NOTE(n, s)                                                                     \
    __asm__ __volatile__("990: nop\n"                                                      \
                         ".pushsection .note.stapsdt,\"\",\"note\"\n"                       \
                         ".balign 4\n"                                                      \
                         ".4byte 992f-991f, 994f-993f, 3\n"                                 \
                         "991: .asciz \"stapsdt\"\n"                                        \
                         "992: .balign 4\n"                                                 \
                         "993: .8byte 990b\n"                                               \
                         ".8byte _.stapsdt.base\n"                                          \
                         ".8byte ctx_note_semaphore\n"                                      \
                         ".asciz \"ctx\"\n"                                                 \
                         ".asciz \"note\"\n"                                                \
                         ".asciz \"-4@%0 8@%1\"\n"                                          \
                         "994: .balign 4\n"                                                 \
                         ".popsection\n"                                                    \
                         ".ifndef _.stapsdt.base\n"                                         \
                         ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
                         ".weak _.stapsdt.base\n"                                           \
                         ".hidden _.stapsdt.base\n"                                         \
                         "_.stapsdt.base: .space 1\n"                                       \
                         ".size _.stapsdt.base, 1\n"                                        \
                         ".popsection\n"                                                    \
                         ".endif\n" ::"r"((int)(n)), "r"((const char *)(s)))

__attribute__((noinline)) long add(long a, long b) { __asm__ volatile("nop"); return a + b; }
__attribute__((noinline)) int greet(const char *who, int n) { __asm__ volatile("nop"); return (int)strlen(who) + n; }
__attribute__((noinline)) int small(unsigned char u, short s, unsigned int w) { __asm__ volatile("nop"); return u + s + (int)w; }
__attribute__((noinline)) double scale(double f, int k) { __asm__ volatile("nop"); return f * k; }
__attribute__((noinline)) long sum3(struct pair p, int k) { __asm__ volatile("nop"); return p.a + p.b + p.c + k; }
__attribute__((noinline)) long many(long a1, long a2, long a3, long a4, long a5, long a6, long a7, long a8) {
    __asm__ volatile("nop");
    return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8;
}

int main(int argc, char **argv) {
    struct pair p = {1, 2, 3};
    long total = add(argc, 2) + greet(argc > 1 ? argv[1] : "hello", 7) + small(200, -3, 70000);
    total += (long)scale(1.5, 2) + sum3(p, 4) + many(1, 2, 3, 4, 5, 6, 7, 8);
    if (ctx_note_semaphore) CTX_NOTE(-5, "noted");
    printf("%ld\n", total);
    return 0;
}
