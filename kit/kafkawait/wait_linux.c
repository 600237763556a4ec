//go:build linux && cgo

// The wrappers the linker puts in place of librdkafka's rd_kafka_queue_poll and
// rd_kafka_queue_destroy (see doc.go). librdkafka's types are opaque here: only pointers
// to them pass through.

#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "_cgo_export.h"

typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_op_s rd_kafka_event_t;

rd_kafka_event_t *__real_rd_kafka_queue_poll(rd_kafka_queue_t *rkqu, int timeout_ms);
void __real_rd_kafka_queue_destroy(rd_kafka_queue_t *rkqu);
size_t rd_kafka_queue_length(rd_kafka_queue_t *rkqu);
void rd_kafka_queue_io_event_enable(rd_kafka_queue_t *rkqu, int fd, const void *payload, size_t size);

int kafkawait_enabled = 1;
static uint64_t queues; // queues that got a pipe

uint64_t kafkawait_queue_count(void) { return __atomic_load_n(&queues, __ATOMIC_RELAXED); }

// One wait in Go lasts at most this long, so that a queue whose pipe never fires (one
// forwarded to another queue) is still polled as often as confluent-kafka-go's producer polls.
enum { max_wait_ms = 100, slots = 64 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	rd_kafka_queue_t *q;
	int rfd, wfd;
} pipes[slots];

static int64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// pipe_of returns the read end of q's pipe, giving q one first; -1 when none can be had
// (every slot taken, or no file descriptors): q is then polled in C as before.
static int pipe_of(rd_kafka_queue_t *q) {
	int fd = -1, free_slot = -1;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < slots; i++) {
		if (pipes[i].q == q) {
			fd = pipes[i].rfd;
			break;
		}
		if (pipes[i].q == NULL && free_slot < 0)
			free_slot = i;
	}
	if (fd < 0 && free_slot >= 0) {
		int p[2];
		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
			rd_kafka_queue_io_event_enable(q, p[1], "1", 1);
			pipes[free_slot].q = q;
			pipes[free_slot].rfd = p[0];
			pipes[free_slot].wfd = p[1];
			fd = p[0];
			__atomic_add_fetch(&queues, 1, __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

rd_kafka_event_t *__wrap_rd_kafka_queue_poll(rd_kafka_queue_t *q, int timeout_ms) {
	if (timeout_ms == 0 || !__atomic_load_n(&kafkawait_enabled, __ATOMIC_RELAXED))
		return __real_rd_kafka_queue_poll(q, timeout_ms);
	rd_kafka_event_t *ev = __real_rd_kafka_queue_poll(q, 0);
	if (ev != NULL)
		return ev;
	int fd = pipe_of(q);
	if (fd < 0)
		return __real_rd_kafka_queue_poll(q, timeout_ms);
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int stalled = 0; // the queue held elements, yet the poll returned none
	for (;;) {
		int wait = max_wait_ms;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return NULL;
			if (left < wait)
				wait = (int)left;
		}
		if (stalled)
			wait = 1;
		if (stalled || rd_kafka_queue_length(q) == 0)
			kafkawaitGoWait(fd, wait);
		ev = __real_rd_kafka_queue_poll(q, 0);
		if (ev != NULL)
			return ev;
		stalled = rd_kafka_queue_length(q) > 0;
	}
}

void __wrap_rd_kafka_queue_destroy(rd_kafka_queue_t *q) {
	int rfd = -1, wfd = -1;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < slots; i++) {
		if (pipes[i].q == q) {
			rfd = pipes[i].rfd;
			wfd = pipes[i].wfd;
			pipes[i].q = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	if (rfd >= 0) {
		// Off before the pipe closes: the queue may outlive this handle (the main queue),
		// and librdkafka must not write to a descriptor that is reused.
		rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
		close(wfd);
		kafkawaitGoRelease(rfd);
	}
	__real_rd_kafka_queue_destroy(q);
}
