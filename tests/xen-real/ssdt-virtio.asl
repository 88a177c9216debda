/*
 * The virtio-mmio devices of the x86 HVM guests of tests/xen-real.
 *
 * Debian's x86 kernels build virtio_mmio as a module without
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the devices are described by ACPI:
 * the driver matches _HID "LNRO0005". The kernel installs this table from the
 * initrd (CONFIG_ACPI_TABLE_UPGRADE): mkimages.sh puts the compiled table in
 * an uncompressed cpio at kernel/firmware/acpi/ and places that cpio first.
 * The OEM table id is new, so the table is added rather than replacing one.
 *
 * mkimages.sh replaces @DEVICES@ with one Device block per window of
 * XR_DEVS (default: the disks at 0xFE000000 IRQ 7, 0xFE001000 IRQ 6,
 * 0xFE002000 IRQ 3; with XR_NETRNG also the net device at 0xFE003000
 * IRQ 4 and the rng at 0xFE004000 IRQ 13): 0xFE000000.. lies in hvmloader's unused reserved
 * range (QEMU claims nothing there; Xen's special pages start at
 * 0xFEFF0000). ISA IRQs 3, 4, 6, 7 and 13 are free in a libxl HVM guest
 * with no serial port (the xl configs set none), no floppy driver, no LPT
 * and a 64-bit kernel (13 was the 387's); hvmloader routes PCI INTx to 5,
 * 10, 11; SCI is 9; 1 and 12 are the i8042's, 8 the RTC's, 14 and 15
 * IDE's. Each device has its own: Xen keeps one assert bit per ISA IRQ,
 * so two servers pulsing one line could swallow each other's edges.
 * IRQNoFlags = edge, active high: virtiod pulses the line per new
 * InterruptStatus bit.
 */
DefinitionBlock ("ssdt-virtio.aml", "SSDT", 2, "VIRTOD", "XRVIRTIO", 0x00000002)
{
    Scope (\_SB)
    {
@DEVICES@
    }
}
