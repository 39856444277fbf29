/* Parameter types for the -L listing test (tests/probes/test_listing_types.py): each is named the
 * way stap 4.8 -L names it, modifiers after their type. */
#include <stddef.h>
struct pt { int x; };
union u { int a; long b; };
enum e { A, B };
__attribute__((noinline)) int types(const char *s, char **argv, struct pt *p, unsigned long n, union u *uu,
                                    enum e x, int (*fp)(int), size_t z, volatile int *vp, const int *const cp,
                                    void *v, int (*vf)(const char *, ...)) {
    __asm__ volatile("nop");
    return s[0] + (int)n + x + (int)z + *vp + *cp + (argv != 0) + (p != 0) + (uu != 0) + (fp != 0) + (v != 0)
           + (vf != 0);
}
int main(void) { return 0; }
