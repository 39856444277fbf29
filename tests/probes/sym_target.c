/* Target for the symbol-probe tests (tests/probes/test_process_query.py and
 * tests/integration/test_symbol_probes.py): an inlined helper, a leaf called from two callers (the
 * .callee caller check), a static function (not .exported), a label, PLT calls (strtol, printf).
 * Built -O2 -g (inline instances, call sites) and -O0 -g (labels, plain line tables).  Every
 * probed function starts with a nop, so uprobe hits stay cheap.  Line numbers are asserted by the
 * tests: edit with care. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int twice(int x) {
    __asm__ volatile("nop");
    return 2 * x;
}

__attribute__((noinline)) int leaf(int x) {
    __asm__ volatile("nop");
    return x + 1;
}

__attribute__((noinline)) int other(int x) {
    __asm__ volatile("nop");
    return leaf(x) * 3;
}

__attribute__((noinline)) static int hidden(int x) {
    __asm__ volatile("nop");
    return x - 1;
}

__attribute__((noinline)) int work(int n) {
    int total = 0;
    for (int i = 0; i < n; i++) {
        total += twice(i);
        /* no code on this line (.nearest) */
        total += leaf(i);
    }
    if (total < 0)
        goto out;
out:
    return total + hidden(n);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2)
        pause();
    printf("%d\n", work(n) + other(n));
    return 0;
}
