# Copyright 2026 hnforge authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit java-pkg-2 systemd

DESCRIPTION="Fault-tolerant distributed file system: DIR, MRC and OSD servers and FUSE client"
HOMEPAGE="https://github.com/xtreemfs/xtreemfs"
# The servers build with Maven, which cannot download inside portage's
# network sandbox: their dependencies come as a prepared local Maven
# repository (see pkg_nofetch). Only that file is fetch-restricted.
SRC_URI="
	fetch+https://github.com/xtreemfs/xtreemfs/archive/refs/tags/${PV}.tar.gz -> ${P}.tar.gz
	server? ( ${P}-maven-repository.tar.xz )
"

LICENSE="BSD"
SLOT="0"
KEYWORDS="~amd64"
IUSE="+client +server split-usr"
REQUIRED_USE="|| ( client server )"
RESTRICT="fetch test"

CDEPEND="
	client? (
		dev-libs/boost:=
		dev-libs/openssl:=
		sys-apps/attr
		sys-fs/fuse:0
	)
"
DEPEND="
	${CDEPEND}
	server? ( >=virtual/jdk-11:* )
"
RDEPEND="
	${CDEPEND}
	server? ( >=virtual/jre-11:* )
"
BDEPEND="
	client? ( dev-build/cmake )
	server? ( dev-java/maven-bin )
"

pkg_nofetch() {
	einfo "Place ${P}-maven-repository.tar.xz in your DISTDIR."
	einfo "It is a Maven local repository (top directory m2/) holding every"
	einfo "artifact 'make server' of XtreemFS ${PV} resolves, produced once on a"
	einfo "machine with network access by running, in the source tree:"
	einfo "  mvn -Dmaven.repo.local=\$PWD/m2 --settings java/settings.xml \\"
	einfo "      --activate-profiles xtreemfs-dev --file java/pom.xml dependency:go-offline"
	einfo "then: tar -cJf ${P}-maven-repository.tar.xz m2"
}

pkg_setup() {
	use server && java-pkg-2_pkg_setup
}

src_prepare() {
	default
	use server && java-pkg-2_src_prepare
}

src_compile() {
	# The JNI library is only needed by Java clients of libxtreemfs, not here.
	use client && emake SKIP_JNI=1 client
	use server && emake MVN_OPTS="--offline -Dmaven.repo.local=${WORKDIR}/m2" server
}

src_install() {
	if use client; then
		emake DESTDIR="${D}" install-client
		# Upstream links /sbin/mount.xtreemfs to a path inside the image
		# directory; mount(8) finds the helper in /usr/bin on merged-usr.
		rm -r "${ED}"/sbin || die
		if use split-usr; then
			dosym -r /usr/bin/mount.xtreemfs /sbin/mount.xtreemfs
			dosym -r /usr/bin/umount.xtreemfs /sbin/umount.xtreemfs
		fi
	fi
	if use server; then
		emake DESTDIR="${D}" install-server install-tools
		# Upstream's SysV scripts are replaced by systemd units.
		rm -r "${ED}"/etc/init.d || die
		systemd_dounit "${FILESDIR}"/xtreemfs-{dir,mrc,osd}.service
		insinto /usr/lib/sysusers.d
		newins "${FILESDIR}"/xtreemfs.sysusers xtreemfs.conf
	fi
}

pkg_postinst() {
	if use server; then
		elog "Each node needs its own uuid= line in /etc/xos/xtreemfs/{dir,mrc,osd}config.properties"
		elog "(the installed files have none), and the MRC and OSD must share capability_secret."
	fi
}
