/*
 * test_conn.c: the pieces of the event engine that need no network:
 * io_uring user_data packing, the state and reason name tables, the
 * intrusive deadline lists the tick scans, and the output queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "chunk.h"
#include "conn.h"
#include "list.h"
#include "worker.h"

static void test_conn_user_data_roundtrip(void **state)
{
	(void)state;
	uint64_t ud = ud_pack(OP_BACKEND_SEND, 0x123456, 0xdeadbeef);
	assert_int_equal(ud_op(ud), OP_BACKEND_SEND);
	assert_int_equal(ud_index(ud), 0x123456);
	assert_int_equal(ud_incarnation(ud), 0xdeadbeef);

	ud = ud_pack(OP_CANCEL, UD_INDEX_MAX, UINT32_MAX);
	assert_int_equal(ud_op(ud), OP_CANCEL);
	assert_int_equal(ud_index(ud), UD_INDEX_MAX);
	assert_int_equal(ud_incarnation(ud), UINT32_MAX);
}

/* Rejecting twin: fields never bleed into each other, and a reused slot's
 * completion is told apart from the current one by its incarnation. */
static void test_conn_user_data_stale_incarnation_differs(void **state)
{
	(void)state;
	uint64_t old = ud_pack(OP_CLIENT_RECV, 7, 41);
	uint64_t cur = ud_pack(OP_CLIENT_RECV, 7, 42);
	assert_int_not_equal(old, cur);
	assert_int_equal(ud_index(old), ud_index(cur));
	assert_int_not_equal(ud_incarnation(old), ud_incarnation(cur));

	/* An index wider than 24 bits is masked, never spills into op. */
	uint64_t wide = ud_pack(OP_TICK, 0xff000001u, 0);
	assert_int_equal(ud_op(wide), OP_TICK);
	assert_int_equal(ud_index(wide), 1);
}

static void test_conn_state_names_complete(void **state)
{
	(void)state;
	for (int s = 0; s < CONN_STATE_MAX; s++) {
		const char *n = conn_state_name((enum conn_state)s);
		assert_non_null(n);
		assert_string_not_equal(n, "UNKNOWN");
		for (int t = 0; t < s; t++)
			assert_string_not_equal(n, conn_state_name((enum conn_state)t));
	}
	for (int r = 0; r < CLOSE_REASON_MAX; r++)
		assert_string_not_equal(close_reason_name((enum close_reason)r), "unknown");
	for (int o = 1; o < OP_MAX; o++)
		assert_string_not_equal(uring_op_name((enum uring_op)o), "unknown");
}

/* Every name leads back to its value (lib/string_table.h), so a name in a
 * log line or a metrics label is never ambiguous. */
static void test_conn_names_roundtrip(void **state)
{
	(void)state;
	for (int s = 0; s < CONN_STATE_MAX; s++)
		assert_int_equal(conn_state_from_name(conn_state_name((enum conn_state)s)), s);
	for (int o = 0; o < OP_MAX; o++)
		assert_int_equal(uring_op_from_name(uring_op_name((enum uring_op)o)), o);
	for (int r = 0; r < CLOSE_REASON_MAX; r++)
		assert_int_equal(close_reason_from_name(close_reason_name((enum close_reason)r)), r);
	for (int e = 0; e < EVICT_CAUSE_MAX; e++) {
		assert_string_not_equal(evict_cause_name((enum evict_cause)e), "unknown");
		assert_int_equal(evict_cause_from_name(evict_cause_name((enum evict_cause)e)), e);
	}
}

/* Rejecting twin: a name that is none, or the fallback, maps to nothing. */
static void test_conn_names_reject_unknown(void **state)
{
	(void)state;
	assert_int_equal(conn_state_from_name("UNKNOWN"), -ENOENT);
	assert_int_equal(conn_state_from_name("relay"), -ENOENT); /* names are exact */
	assert_int_equal(uring_op_from_name("unknown"), -ENOENT);
	assert_int_equal(close_reason_from_name(""), -ENOENT);
	assert_int_equal(close_reason_from_name(NULL), -ENOENT);
	assert_int_equal(evict_cause_from_name("unknown"), -ENOENT);
	assert_string_equal(evict_cause_name(EVICT_CAUSE_MAX), "unknown");
}

static void test_conn_state_names_reject_out_of_range(void **state)
{
	(void)state;
	assert_string_equal(conn_state_name(CONN_STATE_MAX), "UNKNOWN");
	assert_string_equal(conn_state_name((enum conn_state)-1), "UNKNOWN");
	assert_string_equal(close_reason_name(CLOSE_REASON_MAX), "unknown");
	assert_string_equal(uring_op_name(OP_MAX), "unknown");
}

struct item {
	int id;
	struct list_node node;
};

static int ids(struct list_node *head, int *out, int max)
{
	int n = 0;
	for (struct list_node *p = head->next; p != head && n < max; p = p->next)
		out[n++] = list_entry(p, struct item, node)->id;
	return n;
}

/* The handshake list is FIFO; the established list is LRU: activity moves
 * a connection to the tail, so the head is always the first to expire. */
static void test_conn_timeout_list_lru_order(void **state)
{
	(void)state;
	struct list_node head;
	struct item it[4];
	int got[8];

	list_init(&head);
	for (int i = 0; i < 4; i++) {
		it[i].id = i;
		list_init(&it[i].node);
		list_add_tail(&head, &it[i].node);
	}
	assert_int_equal(list_entry(list_first(&head), struct item, node)->id, 0);
	list_move_tail(&head, &it[0].node); /* activity on 0 */
	list_move_tail(&head, &it[2].node); /* then on 2 */
	assert_int_equal(ids(&head, got, 8), 4);
	int want[] = { 1, 3, 0, 2 };
	assert_memory_equal(got, want, sizeof(want));
}

/* Rejecting twin: a removed node is gone, removing it twice is harmless,
 * and an emptied list has no head. */
static void test_conn_timeout_list_removed_not_scanned(void **state)
{
	(void)state;
	struct list_node head;
	struct item a = { .id = 1 }, b = { .id = 2 };
	int got[4];

	list_init(&head);
	list_init(&a.node);
	list_init(&b.node);
	assert_false(list_linked(&a.node));
	list_add_tail(&head, &a.node);
	list_add_tail(&head, &b.node);
	list_del(&a.node);
	list_del(&a.node);
	assert_false(list_linked(&a.node));
	assert_int_equal(ids(&head, got, 4), 1);
	assert_int_equal(got[0], 2);
	list_del(&b.node);
	assert_true(list_empty(&head));
	assert_null(list_first(&head));
}

/* An output queue owns a chunk only while it has bytes to send. */
static void test_conn_outq_releases_chunk_when_drained(void **state)
{
	(void)state;
	struct chunk_pool pool;
	struct outq q = { 0 };

	chunk_pool_init(&pool, 4);
	assert_int_equal(outq_reserve(&q, &pool), 0);
	assert_non_null(q.chunk);
	q.len = 100;
	assert_int_equal(pool.in_use, 1);
	outq_consume(&q, &pool, 60);
	assert_non_null(q.chunk);
	assert_int_equal(outq_pending(&q), 40);
	outq_consume(&q, &pool, 40);
	assert_null(q.chunk);
	assert_int_equal(outq_pending(&q), 0);
	assert_int_equal(pool.in_use, 0);
	assert_int_equal(pool.n_free, 1);
	chunk_pool_destroy(&pool);
}

/* Rejecting twin: a partial send keeps the chunk and the unsent bytes, and
 * the pool never keeps more idle chunks than allowed. */
static void test_conn_outq_partial_send_keeps_bytes(void **state)
{
	(void)state;
	struct chunk_pool pool;
	struct outq q[3] = { { 0 } };

	chunk_pool_init(&pool, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(outq_reserve(&q[i], &pool), 0);
		q[i].len = 10;
	}
	outq_consume(&q[0], &pool, 9);
	assert_non_null(q[0].chunk);
	assert_int_equal(outq_pending(&q[0]), 1);
	for (int i = 0; i < 3; i++)
		outq_release(&q[i], &pool);
	assert_int_equal(pool.in_use, 0);
	assert_int_equal(pool.n_free, 1);
	chunk_pool_destroy(&pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_user_data_roundtrip),
		cmocka_unit_test(test_conn_user_data_stale_incarnation_differs),
		cmocka_unit_test(test_conn_state_names_complete),
		cmocka_unit_test(test_conn_state_names_reject_out_of_range),
		cmocka_unit_test(test_conn_names_roundtrip),
		cmocka_unit_test(test_conn_names_reject_unknown),
		cmocka_unit_test(test_conn_timeout_list_lru_order),
		cmocka_unit_test(test_conn_timeout_list_removed_not_scanned),
		cmocka_unit_test(test_conn_outq_releases_chunk_when_drained),
		cmocka_unit_test(test_conn_outq_partial_send_keeps_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
