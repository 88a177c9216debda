/*
 * One virtio-mmio device for the x86 HVM guest of tests/xen-real.
 *
 * Debian's x86 kernels build virtio_mmio as a module without
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the device is described by ACPI: the
 * driver matches _HID "LNRO0005". The kernel installs this table from the
 * initrd (CONFIG_ACPI_TABLE_UPGRADE): mkimages.sh puts the compiled table in
 * an uncompressed cpio at kernel/firmware/acpi/ and places that cpio first.
 * The OEM table id is new, so the table is added rather than replacing one.
 *
 * @BASE@ and @IRQ@ are substituted by mkimages.sh (defaults 0xFE000000 and 7):
 * 0xFE000000 lies in hvmloader's unused reserved range (QEMU claims nothing
 * there; Xen's special pages start at 0xFEFF0000); ISA IRQ 7 is free in a
 * libxl HVM guest (hvmloader routes PCI INTx to 5, 10, 11; SCI is 9).
 * IRQNoFlags = edge, active high: virtiod pulses the line per new
 * InterruptStatus bit.
 */
DefinitionBlock ("ssdt-virtio.aml", "SSDT", 2, "VIRTOD", "XRVIRTIO", 0x00000001)
{
    Scope (\_SB)
    {
        Device (VIO0)
        {
            Name (_HID, "LNRO0005")
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadWrite, @BASE@, 0x00000200)
                IRQNoFlags () {@IRQ@}
            })
        }
    }
}
