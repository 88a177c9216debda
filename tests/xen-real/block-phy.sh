#!/bin/sh
# Hotplug script for the PV disk of tests/xen-real's blkback comparison
# (disk = [ '..., script=block-phy, target=/dev/loopN' ]): Debian's
# /etc/xen/scripts/block needs bash and more of util-linux than the busybox
# dom0 has; xen-blkback only needs the device's major:minor in xenstore.
# libxl runs it as `block-phy add|remove` with XENBUS_PATH set.
case $1 in
add)
	dev=$(xenstore-read "$XENBUS_PATH/params") || exit 1
	mm=$(stat -L -c '%t:%T' "$dev") || exit 1
	xenstore-write "$XENBUS_PATH/physical-device" "$mm" \
		"$XENBUS_PATH/physical-device-path" "$dev" \
		"$XENBUS_PATH/hotplug-status" connected
	;;
remove)
	xenstore-write "$XENBUS_PATH/hotplug-status" disconnected 2>/dev/null
	;;
esac
exit 0
