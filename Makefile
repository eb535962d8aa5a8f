# SPDX-License-Identifier: GPL-2.0
#
# dm-flushmirror: out-of-tree module build (the module itself is described
# by Kbuild) and the project's entry points.
#   make [KDIR=...]   build dm-flushmirror.ko against KDIR
#   make check        the whole test run (scripts/check.sh), 90-minute budget
#   make check-full   the same, longer: every data-path test on the debug kernel
#   make distclean    also removes .build/ (kernel tree and UML build cache)
#   make deb          the Debian package dm-flushmirror-dkms, in .build/deb/

KDIR ?= /lib/modules/$(shell uname -r)/build
DKMS_VERSION := 1.0.0

.PHONY: all modules clean distclean check check-full install demo bench dkms-install dkms-remove deb

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clean:
	if [ -d $(KDIR) ]; then $(MAKE) -C $(KDIR) M=$(CURDIR) clean; else rm -rf *.o *.ko *.mod *.mod.c .*.cmd Module.symvers modules.order; fi

distclean: clean
	rm -rf .build

check:
	scripts/check.sh

# the same with a four-hour budget and every data-path test on the x86_64
# debug kernel (KASAN, lockdep, kmemleak, two CPUs), not only its four
# concurrency tests
check-full:
	FM_BUDGET=$${FM_BUDGET:-14400} FM_DEBUG_DEFAULT_TESTS=full scripts/check.sh

install:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules_install

demo:
	scripts/demo.sh

bench:
	scripts/bench/run.sh

dkms-install:
	git archive --prefix=dm-flushmirror-$(DKMS_VERSION)/ HEAD | tar -x -C /usr/src && dkms add -m dm-flushmirror -v $(DKMS_VERSION) && dkms build -m dm-flushmirror -v $(DKMS_VERSION) && dkms install -m dm-flushmirror -v $(DKMS_VERSION)

dkms-remove:
	dkms remove -m dm-flushmirror -v $(DKMS_VERSION) --all

# The package is built from a copy of the working tree (the files git
# tracks, as they are in the tree: no stray untracked file) in .build/deb/src, so that
# neither debhelper's files nor the packages (dpkg-buildpackage writes them
# to the parent directory) land in the checkout.  A full build: the binary
# package and the (native) source package, which lintian checks too.  Needs
# git, debhelper, dh-dkms and python3-docutils (dpkg-buildpackage says what
# is missing); scripts/deb-check.sh installs them and checks
# the package.
DEB_DIR := $(CURDIR)/.build/deb

deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	git -C $(CURDIR) ls-files -z --cached | (cd $(CURDIR) && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc
	@ls $(DEB_DIR)/*.deb
