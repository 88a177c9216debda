# The Xen shim links against the libxen* libraries (XEN_LIBS, Makefile).
SHIM_LDLIBS += $(XEN_LIBS)
