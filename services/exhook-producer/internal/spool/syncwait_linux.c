//go:build linux && cgo

// A helper thread that runs fsync for the spool's committer, so that the committer can wait
// for it in a bounded raw system call without giving up its P (syncwait_linux.go).

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "syncwait_linux.h"

static int live_helpers;

static void signal_done(spool_syncer *s) {
	uint64_t v = 1;
	while (write(s->done, &v, sizeof v) < 0 && errno == EINTR) {
	}
}

static void *helper_main(void *arg) {
	spool_syncer *s = arg;
	for (;;) {
		uint64_t v;
		if (read(s->req, &v, sizeof v) != sizeof v) {
			if (errno == EINTR) {
				continue;
			}
			// Not expected of an eventfd. Fail the waiting commit and every later one; s
			// stays until spool_syncer_stop, which the Go side still calls.
			__atomic_store_n(&s->err, errno ? errno : EIO, __ATOMIC_RELEASE);
			__atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
			signal_done(s);
			break;
		}
		if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
			break;
		}
		int fd = __atomic_load_n(&s->fd, __ATOMIC_ACQUIRE);
		int err = fsync(fd) == 0 ? 0 : errno;
		__atomic_store_n(&s->err, err, __ATOMIC_RELEASE);
		__atomic_add_fetch(&s->syncs, 1, __ATOMIC_RELAXED);
		signal_done(s);
	}
	__atomic_sub_fetch(&live_helpers, 1, __ATOMIC_RELAXED);
	return NULL;
}

spool_syncer *spool_syncer_start(int *err) {
	spool_syncer *s = calloc(1, sizeof *s);
	if (s == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	s->req = eventfd(0, EFD_CLOEXEC);
	s->done = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->req < 0 || s->done < 0) {
		*err = errno;
		goto fail;
	}
	__atomic_add_fetch(&live_helpers, 1, __ATOMIC_RELAXED);
	int rc = pthread_create(&s->thread, NULL, helper_main, s);
	if (rc != 0) {
		__atomic_sub_fetch(&live_helpers, 1, __ATOMIC_RELAXED);
		*err = rc;
		goto fail;
	}
	return s;
fail:
	if (s->req >= 0) {
		close(s->req);
	}
	if (s->done >= 0) {
		close(s->done);
	}
	free(s);
	return NULL;
}

int spool_syncer_post(spool_syncer *s, int fd) {
	if (__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE)) {
		return __atomic_load_n(&s->err, __ATOMIC_ACQUIRE);
	}
	__atomic_store_n(&s->fd, fd, __ATOMIC_RELEASE);
	uint64_t v = 1;
	while (write(s->req, &v, sizeof v) < 0) {
		if (errno != EINTR) {
			return errno;
		}
	}
	return 0;
}

int spool_syncer_err(spool_syncer *s) { return __atomic_load_n(&s->err, __ATOMIC_ACQUIRE); }

uint64_t spool_syncer_syncs(spool_syncer *s) { return __atomic_load_n(&s->syncs, __ATOMIC_RELAXED); }

void spool_syncer_stop(spool_syncer *s) {
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	uint64_t v = 1;
	while (write(s->req, &v, sizeof v) < 0 && errno == EINTR) {
	}
	// Only here, once the helper has exited (after a stop or a failed read), is s freed: the
	// Go side holds it until this call. The done eventfd belongs to the Go side.
	pthread_join(s->thread, NULL);
	close(s->req);
	free(s);
}

int spool_syncer_live(void) { return __atomic_load_n(&live_helpers, __ATOMIC_RELAXED); }
