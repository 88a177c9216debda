/* The composition root's own commands, clients of a daemon's control
 * socket: `virtiod stat` and `virtiod resize`. */
#ifndef VIRTIOD_MAIN_STAT_CMD_H
#define VIRTIOD_MAIN_STAT_CMD_H

struct root_command {
	const char *name;
	const char *usage; /* after "virtiod NAME" in --help */
	const char *help;
	int (*main)(int argc, char **argv); /* argv[0] is NAME; exit status */
};

/* Terminated by {NULL}. */
extern const struct root_command root_commands[];

#endif
