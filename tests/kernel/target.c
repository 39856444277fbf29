/* Test target for the kernel probe tests: every probed function starts with
 * a nop so that a uprobe hit is emulated (about 1 us) instead of single-stepped. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned short demo_tick_semaphore __attribute__((section(".probes"), used)) = 0;

/* One SDT marker, written out by hand (sys/sdt.h is not always installed). */
#define DEMO_TICK(a, b)                                                                    \
    __asm__ __volatile__("990: nop\n"                                                      \
                         ".pushsection .note.stapsdt,\"\",\"note\"\n"                       \
                         ".balign 4\n"                                                      \
                         ".4byte 992f-991f, 994f-993f, 3\n"                                 \
                         "991: .asciz \"stapsdt\"\n"                                        \
                         "992: .balign 4\n"                                                 \
                         "993: .8byte 990b\n"                                               \
                         ".8byte _.stapsdt.base\n"                                          \
                         ".8byte demo_tick_semaphore\n"                                     \
                         ".asciz \"demo\"\n"                                                \
                         ".asciz \"tick\"\n"                                                \
                         ".asciz \"-8@%0 8@%1\"\n"                                          \
                         "994: .balign 4\n"                                                 \
                         ".popsection\n"                                                    \
                         ".ifndef _.stapsdt.base\n"                                         \
                         ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
                         ".weak _.stapsdt.base\n"                                           \
                         ".hidden _.stapsdt.base\n"                                         \
                         "_.stapsdt.base: .space 1\n"                                       \
                         ".size _.stapsdt.base, 1\n"                                        \
                         ".popsection\n"                                                    \
                         ".endif\n" ::"r"((long)(a)), "r"((unsigned long)(b)))

__attribute__((noinline)) long add(long a, long b) {
    __asm__ volatile("nop");
    return a + b;
}

__attribute__((noinline)) int greet(const char *who, int n) {
    __asm__ volatile("nop");
    return (int)strlen(who) + n;
}

/* A function whose first instruction the kernel refuses to probe (lock prefix). */
__asm__(".globl locked\n.type locked, @function\nlocked:\n\tlock incl (%rdi)\n\tret\n"
        ".size locked, .-locked\n");

static void *worker(void *arg) { return arg; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 3;
    const char *mode = argc > 2 ? argv[2] : "";
    long sum = 0;
    uid_t saved_euid = geteuid();
    if (strchr(mode, 'e') && seteuid(getuid()) != 0) return 3; /* a setuid program dropping privilege */
    if (strchr(mode, 'w')) { /* wait for a line on stdin before working */
        char buf[8];
        if (!fgets(buf, sizeof buf, stdin)) return 2;
    }
    if (strchr(mode, 'e') && seteuid(saved_euid) != 0) return 4; /* ... and taking it back */
    for (long i = 0; i < n; i++) {
        sum = add(sum, i);
        if (demo_tick_semaphore) DEMO_TICK(-i, sum);
    }
    greet("hello", 7);
    if (strchr(mode, 't')) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
    }
    if (strchr(mode, 'p')) getppid();
    printf("%ld\n", sum);
    return 0;
}
