#include <pthread.h>
#include <stdint.h>

typedef struct spool_syncer {
	int req;  // eventfd: a request to fsync fd; the helper blocks reading it
	int done; // eventfd, non-blocking: one count per finished request
	int fd;
	int err; // errno of the last fsync, 0 after a success
	int stop;
	int dead;
	uint64_t syncs;
	pthread_t thread; // joined by spool_syncer_stop, which frees the struct
} spool_syncer;

spool_syncer *spool_syncer_start(int *err);
int spool_syncer_post(spool_syncer *s, int fd);
int spool_syncer_err(spool_syncer *s);
uint64_t spool_syncer_syncs(spool_syncer *s);
void spool_syncer_stop(spool_syncer *s);
int spool_syncer_live(void);
