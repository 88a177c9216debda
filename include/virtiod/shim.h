/* The contract between the composition root (src/main) and a hypervisor
 * shim. */
#ifndef VIRTIOD_SHIM_H
#define VIRTIOD_SHIM_H

/* Values of the stop flag a shim's serve polls (0: keep serving). The
 * composition root's signal handlers set them: SIGTERM/SIGINT VD_STOP,
 * SIGUSR1 VD_HANDOVER for a shim that can hand a device over. */
#define VD_STOP 1 /* finish requests in flight, remove the device */
/* Finish requests in flight, record the device state and leave the device
 * to the next daemon (Xen: the IOREQ server stays registered). */
#define VD_HANDOVER 2

#endif
