# Copyright 2026 hnforge authors
# Distributed under the terms of the MIT license

EAPI=8

DESCRIPTION="hnforge hardware-node files: boot module, health check, instantiation script"
# Placeholder until the project has a public home.
HOMEPAGE="https://hnforge.invalid/"
S="${WORKDIR}"

LICENSE="MIT"
SLOT="0"
KEYWORDS="~amd64"

# Everything comes from ${FILESDIR}, filled by hnforge at build time.
RDEPEND="sys-apps/busybox"

src_install() {
	# Sourced, not run: the same module the initramfs uses, kept in the image
	# so the running system (health check, shutdown) uses identical logic.
	insinto /usr/lib/hnforge
	doins "${FILESDIR}"/hn-boot.sh

	local f
	for f in hn-health hn-instantiate; do
		if [[ -e ${FILESDIR}/${f} ]]; then
			dosbin "${FILESDIR}"/${f}
		fi
	done
	for f in hn-health.service hn-instantiate.service; do
		if [[ -e ${FILESDIR}/${f} ]]; then
			insinto /usr/lib/systemd/system
			doins "${FILESDIR}"/${f}
		fi
	done
}
