# Copyright 2026 hnforge authors
# Distributed under the terms of the MIT license

EAPI=8

inherit systemd

DESCRIPTION="hnforge hardware-node files: boot module, updater and their units"
# Placeholder until the project has a public home.
HOMEPAGE="https://hnforge.invalid/"
S="${WORKDIR}"

LICENSE="MIT"
SLOT="0"
KEYWORDS="~amd64"

# Everything comes from ${FILESDIR}, filled by hnforge at build time together
# with node-files.list (pipeline/node-files.ts): "<mode> <target> <file>".
RDEPEND="
	app-arch/zstd
	app-crypt/gnupg
	net-misc/curl
	sys-apps/busybox
"

src_install() {
	local mode target file
	while read -r mode target file; do
		[[ -n ${file} ]] || continue
		case ${target} in
			/usr/lib/systemd/system/*)
				systemd_dounit "${FILESDIR}/${file}"
				;;
			*)
				insinto "${target%/*}"
				insopts -m"${mode}"
				newins "${FILESDIR}/${file}" "${target##*/}"
				;;
		esac
	done < "${FILESDIR}"/node-files.list || die
}
