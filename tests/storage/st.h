/* The storage suite (make check-storage): virtiod serving NBD exports and
 * Ceph RBD images, driven through its vhost-user socket by the protocol
 * tests' frontend (tests/vhost-user/lib), with real servers: nbdkit started
 * per test, a one-node Ceph cluster started by tests/storage/run.sh. Bytes
 * are checked through the stores' own tools (nbdcopy, rbd export). */
#ifndef VIRTIOD_TESTS_STORAGE_ST_H
#define VIRTIOD_TESTS_STORAGE_ST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vu_test.h"

/* A server process the test started (nbdkit); stopped by its pid. */
struct srv {
	pid_t pid;
	char sock[128]; /* its unix socket */
	int port;	/* else its TCP port on 127.0.0.1 */
	char log[160];
};

/* Starts argv (NULL-terminated) with output to s->log and waits until its
 * unix socket s->sock accepts connections. */
void srv_start(struct srv *s, const char *const *argv);
/* nbdkit -f -U SOCK [args...] (NULL-terminated): filters, plugin, params.
 * The socket and log go in dir. */
void nbdkit_start(struct srv *s, const char *dir, ...);
/* The same on 127.0.0.1:PORT (a port free now, picked by the kernel). */
void nbdkit_start_tcp(struct srv *s, const char *dir, ...);
/* KILL and TERM stop and reap it (TERM: KILL after 3 s); others are sent. */
void srv_signal(struct srv *s, int sig);
bool srv_alive(struct srv *s);
/* Teardown: stops the daemon, then the servers the test started (by pid:
 * nbdkit waits for its clients), then env_teardown. */
int st_teardown(void **state);
/* The NBD URI of s. */
const char *nbd_uri(const struct srv *s, char *buf, size_t len);

/* Runs argv and asserts exit status 0; output (stdout+stderr) kept in out
 * when given. */
void cmd_ok(const char *const *argv);
/* Copies the whole store to file: nbdcopy URI FILE / rbd export. */
void nbd_export_to(const char *uri, const char *file);
void rbd_export_to(const char *image, const char *file);
/* rbd CMD ARGS... against the test cluster (NULL-terminated). */
void rbd_cmd(const char *first, ...);
/* The test cluster's conf file ($ST_CEPH_CONF), fails the test if unset. */
const char *ceph_conf(void);
/* A pool/image name unique to this run. */
void rbd_image_name(char *buf, size_t len, const char *tag);
/* rbd:POOL/IMAGE:conf=...: the --disk argument. */
void rbd_disk(char *buf, size_t len, const char *image);

/* File checks. */
bool file_has_pattern(const char *path, uint64_t off, size_t len,
		      uint32_t seed);
bool file_is_zero(const char *path, uint64_t off, size_t len);

/* Guest-side: a request of n data buffers (one per pattern piece) at
 * sector, status returned; waits up to timeout_ms (asserts it came). */
uint8_t blk_do_segs(struct ring *r, uint32_t type, uint64_t sector,
		    const uint64_t *gpa, const uint32_t *len, unsigned n);
/* A write of len bytes of pattern seed at sector (one buffer); status. */
uint8_t write_pattern(struct env *e, uint64_t sector, uint32_t len,
		      uint32_t seed);
/* Reads len bytes at sector, true if OK and they hold pattern seed. */
bool read_has_pattern(struct env *e, uint64_t sector, uint32_t len,
		      uint32_t seed);
bool read_is_zero(struct env *e, uint64_t sector, uint32_t len);
/* DISCARD / WRITE_ZEROES of one segment; status. */
uint8_t dwz(struct env *e, uint32_t type, uint64_t sector, uint32_t sectors,
	    bool unmap);
/* Submits one request and waits up to timeout_ms; returns its status and
 * the time it took (ms), or fails if no answer. */
uint8_t timed_do(struct env *e, uint32_t type, uint64_t sector, uint32_t len,
		 int timeout_ms, unsigned *ms);
/* Device config: capacity in sectors; features offered. */
uint64_t cfg_capacity(struct env *e);
uint64_t dev_features(struct env *e);
/* With a backend request channel set up (fd returned): waits for
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG. */
int backend_channel(struct env *e);
bool wait_config_change(int fd, int timeout_ms);

/* virtiod started with --disk and extra options (NULL-terminated), then a
 * frontend with one queue of 128. */
void serve(struct env *e, const char *disk, ...);
/* virtiod run to its exit (a start that must fail); its stderr in err. */
int serve_fails(const char *disk, char *err, size_t errlen, ...);

int run_nbd_tests(void);
int run_rbd_tests(void);
int run_cli_storage_tests(void);

#endif
