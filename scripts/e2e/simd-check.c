// SPDX-License-Identifier: GPL-2.0
/*
 * simd-check: do the vector registers of user threads survive context
 * switches?  Used by scripts/e2e/t00-testbed.sh to prove the test bed's
 * User-Mode Linux keeps every thread's FP/SIMD state (see
 * scripts/uml/patches/0001-*.patch), and by the scripts' first lines to
 * describe the host CPU.
 *
 *   simd-check --probe
 *	one line: CPU brand, XSAVE size for the enabled features
 *	(CPUID.(EAX=0DH,ECX=0):EBX), XCR0, whether AMX is there, and the size
 *	of the host's NT_X86_XSTATE ptrace regset (what UML's
 *	PTRACE_SETREGSET must pass: the number that breaks an unpatched UML
 *	when it is not 2696 or less)
 *   simd-check [PROCS [THREADS [ROUNDS]]]   (default 3 4 3000)
 *	PROCS processes with THREADS threads each; every thread loads its own
 *	pattern into the vector registers (xmm0-15 always; ymm0-15 with
 *	AVX2; zmm0-31 and k0-7 with AVX-512F), makes ROUNDS sched_yield()
 *	system calls with the registers live (each one a round trip through
 *	the kernel, and a switch to another thread or process whenever one
 *	is runnable), stores them and compares.  Threads of one process share
 *	a host process under UML, so a state that is not saved and restored
 *	per thread shows up as another thread's pattern.
 *
 * Prints one line per register class and, when every register of every
 * thread came back intact, "simd-check: all intact: <classes>" and exits
 * 0; exits 1 when one did not, 2 on bad usage or a failed setup.
 */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define SYS_SCHED_YIELD "24"

static long rounds = 3000;
static int nthreads = 4;

struct worker {
	int id;
	long bad_sse, bad_avx2, bad_avx512;
};

static void fill(uint8_t *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = seed >> 16;
	}
}

#define LD(insn, r, off) insn " " #off "(%[p]), %%" #r "\n\t"
#define ST(insn, r, off) insn " %%" #r ", " #off "(%[o])\n\t"
#define LOOP \
	"1:\n\t" \
	"mov $" SYS_SCHED_YIELD ", %%eax\n\t" \
	"syscall\n\t" \
	"dec %[n]\n\t" \
	"jnz 1b\n\t"

#define X16(M, insn, reg, sz) \
	M(insn, reg##0, 0 * sz) M(insn, reg##1, 1 * sz) \
	M(insn, reg##2, 2 * sz) M(insn, reg##3, 3 * sz) \
	M(insn, reg##4, 4 * sz) M(insn, reg##5, 5 * sz) \
	M(insn, reg##6, 6 * sz) M(insn, reg##7, 7 * sz) \
	M(insn, reg##8, 8 * sz) M(insn, reg##9, 9 * sz) \
	M(insn, reg##10, 10 * sz) M(insn, reg##11, 11 * sz) \
	M(insn, reg##12, 12 * sz) M(insn, reg##13, 13 * sz) \
	M(insn, reg##14, 14 * sz) M(insn, reg##15, 15 * sz)

#define CLOB16 "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", \
	"xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", \
	"xmm14", "xmm15"

static void run_sse(const uint8_t *p, uint8_t *o, long n)
{
	asm volatile(X16(LD, "movdqu", xmm, 16) LOOP X16(ST, "movdqu", xmm, 16)
		     : [n] "+r" (n)
		     : [p] "r" (p), [o] "r" (o)
		     : "rax", "rcx", "r11", "memory", "cc", CLOB16);
}

__attribute__((target("avx2")))
static void run_avx2(const uint8_t *p, uint8_t *o, long n)
{
	asm volatile(X16(LD, "vmovdqu", ymm, 32) LOOP X16(ST, "vmovdqu", ymm, 32)
		     : [n] "+r" (n)
		     : [p] "r" (p), [o] "r" (o)
		     : "rax", "rcx", "r11", "memory", "cc", CLOB16);
}

/* zmm0-31 (64 bytes each) then k0-7 (8 bytes each, at 2048) */
#define ZLD(r, off) "vmovdqu64 " #off "(%[p]), %%" #r "\n\t"
#define ZST(r, off) "vmovdqu64 %%" #r ", " #off "(%[o])\n\t"
#define KLD(r, off) "kmovw " #off "(%[p]), %%" #r "\n\t"
#define KST(r, off) "kmovw %%" #r ", " #off "(%[o])\n\t"
#define Z8(M, a, b, c, d, e, f, g, h, base) \
	M(a, base + 0) M(b, base + 64) M(c, base + 128) M(d, base + 192) \
	M(e, base + 256) M(f, base + 320) M(g, base + 384) M(h, base + 448)
#define ZALL(M) \
	Z8(M, zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, 0) \
	Z8(M, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, 512) \
	Z8(M, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, 1024) \
	Z8(M, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31, 1536)
#define KALL(M) M(k1, 2056) M(k2, 2064) M(k3, 2072) M(k4, 2080) \
	M(k5, 2088) M(k6, 2096) M(k7, 2104)
#define Z_BYTES 2112

__attribute__((target("avx512f")))
static void run_avx512(const uint8_t *p, uint8_t *o, long n)
{
	asm volatile(ZALL(ZLD) KALL(KLD) LOOP ZALL(ZST) KALL(KST)
		     : [n] "+r" (n)
		     : [p] "r" (p), [o] "r" (o)
		     : "rax", "rcx", "r11", "memory", "cc", CLOB16,
		       "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
		       "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
		       "xmm28", "xmm29", "xmm30", "xmm31",
		       "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

static int have_avx2, have_avx512;

/* compare the bytes that were loaded (k registers: kmovw, 2 bytes each) */
static int differs(const uint8_t *a, const uint8_t *b, int z)
{
	int i;

	if (!z)
		return memcmp(a, b, 512) != 0;
	if (memcmp(a, b, 2048))
		return 1;
	for (i = 1; i < 8; i++)
		if (memcmp(a + 2048 + 8 * i, b + 2048 + 8 * i, 2))
			return 1;
	return 0;
}

static void *worker(void *arg)
{
	struct worker *w = arg;
	uint8_t pat[Z_BYTES], out[Z_BYTES];
	long chunk = 50, done;
	int round = 0;

	for (done = 0; done < rounds; done += chunk, round++) {
		unsigned int seed = (unsigned int)(w->id * 7919 + round);

		fill(pat, sizeof(pat), seed);
		memset(out, 0, sizeof(out));
		run_sse(pat, out, chunk);
		if (memcmp(pat, out, 256))
			w->bad_sse++;
		if (have_avx2) {
			memset(out, 0, sizeof(out));
			run_avx2(pat, out, chunk);
			if (differs(pat, out, 0))
				w->bad_avx2++;
		}
		if (have_avx512) {
			memset(out, 0, sizeof(out));
			run_avx512(pat, out, chunk);
			if (differs(pat, out, 1))
				w->bad_avx512++;
		}
	}
	return NULL;
}

/* one process: nthreads threads; the counts go out on fd */
static int process(int pidx, int fd)
{
	pthread_t t[64];
	struct worker w[64];
	long sums[3] = { 0, 0, 0 };
	int i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < nthreads; i++) {
		w[i].id = pidx * 64 + i + 1;
		if (pthread_create(&t[i], NULL, worker, &w[i]))
			return 2;
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sums[0] += w[i].bad_sse;
		sums[1] += w[i].bad_avx2;
		sums[2] += w[i].bad_avx512;
	}
	return write(fd, sums, sizeof(sums)) == sizeof(sums) ? 0 : 2;
}

/* the size of the NT_X86_XSTATE regset of a traced child, -errno on error */
static long regset_size(void)
{
	size_t len = 1 << 20;
	struct iovec iov;
	long ret;
	pid_t pid;
	void *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	iov.iov_base = buf;
	iov.iov_len = len;
	ret = ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov);
	ret = ret < 0 ? -1 : (long)iov.iov_len;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	munmap(buf, len);
	return ret;
}

static void probe(void)
{
	long rs = regset_size();
	unsigned int a, b, c, d, brand[12] = { 0 };
	unsigned long long xcr0 = 0;
	unsigned int xsize = 0;
	int amx = 0;

	if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
		__get_cpuid(0x80000002, &brand[0], &brand[1], &brand[2], &brand[3]);
		__get_cpuid(0x80000003, &brand[4], &brand[5], &brand[6], &brand[7]);
		__get_cpuid(0x80000004, &brand[8], &brand[9], &brand[10], &brand[11]);
	}
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
		amx = (d >> 24) & 1;	/* AMX-TILE */
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {
		unsigned int lo, hi;

		asm volatile("xgetbv" : "=a" (lo), "=d" (hi) : "c" (0));
		xcr0 = ((unsigned long long)hi << 32) | lo;
		__get_cpuid_count(0xd, 0, &a, &b, &c, &d);
		xsize = b;
	}
	printf("host cpu \"%.48s\": XSAVE %u bytes for XCR0 0x%llx, AMX %s, ptrace NT_X86_XSTATE regset %ld bytes (%s)\n",
	       (char *)brand, xsize, xcr0, amx ? "yes" : "no", rs,
	       rs < 0 ? "ptrace refused" : rs > 2696 ?
	       "larger than UML 6.12's fixed 2696: only the patched UML boots" :
	       "fits UML 6.12's fixed 2696-byte buffer");
}

int main(int argc, char **argv)
{
	long total[3] = { 0, 0, 0 };
	int nprocs = 3, i, fds[2], status, rc = 0;

	if (argc > 1 && !strcmp(argv[1], "--probe")) {
		probe();
		return 0;
	}
	if (argc > 1)
		nprocs = atoi(argv[1]);
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (argc > 3)
		rounds = atol(argv[3]);
	if (nprocs < 1 || nprocs > 64 || nthreads < 1 || nthreads > 64 ||
	    rounds < 1) {
		fprintf(stderr, "usage: %s [--probe | PROCS THREADS ROUNDS]\n", argv[0]);
		return 2;
	}
	__builtin_cpu_init();
	have_avx2 = __builtin_cpu_supports("avx2");
	have_avx512 = __builtin_cpu_supports("avx512f");
	if (pipe(fds))
		return 2;
	for (i = 0; i < nprocs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return 2;
		if (!pid)
			_exit(process(i, fds[1]));
	}
	for (i = 0; i < nprocs; i++) {
		long s[3];

		if (read(fds[0], s, sizeof(s)) != sizeof(s)) {
			rc = 2;
			break;
		}
		total[0] += s[0];
		total[1] += s[1];
		total[2] += s[2];
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			rc = 2;
	printf("simd-check: %d processes x %d threads x %ld system calls with live registers\n",
	       nprocs, nthreads, rounds);
	printf("simd-check: xmm0-15: %ld corrupted rounds\n", total[0]);
	if (have_avx2)
		printf("simd-check: ymm0-15 (AVX2): %ld corrupted rounds\n", total[1]);
	else
		printf("simd-check: ymm0-15 (AVX2): not checked, the CPU has no AVX2\n");
	if (have_avx512)
		printf("simd-check: zmm0-31, k1-7 (AVX-512F): %ld corrupted rounds\n", total[2]);
	else
		printf("simd-check: zmm0-31 (AVX-512F): not checked, the CPU has no AVX-512F\n");
	if (total[0] || total[1] || total[2])
		return 1;
	if (rc)
		return rc;
	/* the line t00-testbed requires: no output is no proof */
	printf("simd-check: all intact: xmm%s%s\n", have_avx2 ? " ymm" : "",
	       have_avx512 ? " zmm k" : "");
	return fflush(stdout) ? 2 : 0;
}
