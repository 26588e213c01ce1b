/*
 * skip_because.h: cmocka's skip() says nothing, and a silent skip is how a
 * test rots unseen. Every skip in tests/unit names what this host lacks,
 * in the test's output, so a SKIP that should not be there is noticed.
 * Include after <cmocka.h>.
 */
#ifndef MTLS_TEST_SKIP_BECAUSE_H
#define MTLS_TEST_SKIP_BECAUSE_H

#define skip_because(why)                                          \
	do {                                                       \
		print_message("[  SKIP    ] %s: %s\n", __func__, why); \
		skip();                                            \
	} while (0)

#define SKIP_UNLESS_ROOT(what) \
	do { if (geteuid() != 0) skip_because("not root: " what); } while (0)

#endif
