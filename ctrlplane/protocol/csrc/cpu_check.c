/* The CPU a build needs. .cargo/config.toml compiles every Rust crate for
 * x86-64-v3; on an older CPU the first AVX2 or BMI2 instruction would die
 * of SIGILL with no word said, and Rust code cannot check first: whatever
 * it is compiled for may already use those instructions (clap's first
 * struct copy does). This constructor is C, compiled for the x86-64
 * baseline, and runs before any Rust code in every program that links
 * sluice-protocol (sluice, sluice-cli, sluice-controller): it names what
 * the CPU lacks and exits. build.rs defines SLUICE_CPU_NEEDS_* from the
 * features the Rust code is compiled for. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void sluice_cpu_check(void)
{
    const char *missing = NULL;
    __builtin_cpu_init();
#define NEEDS(feature, name) \
    if (!missing && !__builtin_cpu_supports(feature)) missing = name
#ifdef SLUICE_CPU_NEEDS_AVX
    NEEDS("avx", "AVX");
#endif
#ifdef SLUICE_CPU_NEEDS_AVX2
    NEEDS("avx2", "AVX2");
#endif
#ifdef SLUICE_CPU_NEEDS_BMI1
    NEEDS("bmi", "BMI1");
#endif
#ifdef SLUICE_CPU_NEEDS_BMI2
    NEEDS("bmi2", "BMI2");
#endif
#ifdef SLUICE_CPU_NEEDS_FMA
    NEEDS("fma", "FMA");
#endif
#ifdef SLUICE_CPU_NEEDS_F16C
    NEEDS("f16c", "F16C");
#endif
#ifdef SLUICE_CPU_NEEDS_LZCNT
    NEEDS("lzcnt", "LZCNT");
#endif
#ifdef SLUICE_CPU_NEEDS_MOVBE
    NEEDS("movbe", "MOVBE");
#endif
    if (missing) {
        fprintf(stderr,
                "%s: this build needs an x86-64-v3 CPU (AVX2, BMI1/2, FMA, F16C, LZCNT, MOVBE); "
                "this one has no %s. Build for it with RUSTFLAGS=\"-C target-cpu=x86-64-v2\".\n",
                program_invocation_short_name, missing);
        exit(1);
    }
}
