# mpnctl, the operator CLI (redis/mpnctl/), included by the top-level
# Makefile.  It links the module's pure files (ngx_mpn_module/mpn_*.c) so
# that its times, records and tokens are the module's own.

MPNCTL_SRCS := $(wildcard redis/mpnctl/*.c)
MPNCTL_HDRS := $(wildcard redis/mpnctl/*.h)

TOOLS += $(BUILD)/mpnctl

$(BUILD)/mpnctl: $(MPNCTL_SRCS) $(MPNCTL_HDRS) $(PURE_SRCS) $(PURE_HDRS) \
		redis/mpnctl/mpnctl.mk
	@mkdir -p $(dir $@)
	$(CC) -g -O2 -Wall -Wextra -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	    $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) \
	    -Ingx_mpn_module -Iredis/mpnctl -o $@ \
	    $(MPNCTL_SRCS) $(PURE_SRCS) -lhiredis -lssl $(PURE_LIBS)
