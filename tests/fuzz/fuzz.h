/*
 * The libFuzzer entry points every tests/fuzz/fuzz_<target>.c defines, declared once
 * so that the project's -Wmissing-prototypes holds; replay_main.c calls them the
 * same way libFuzzer does.  FUZZ_CHECK is the targets' assert: it stays on in every
 * build (no NDEBUG) and traps, so libFuzzer saves the input and replay fails.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int	 LLVMFuzzerInitialize(int *argc, char ***argv);
int	 LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant violated: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		__builtin_trap();					\
	}								\
} while (0)

#endif
