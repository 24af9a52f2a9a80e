// Debian packages only the tests need, beyond what the build and `hnforge
// provision` declare through their commands. One word each says why.
// `npm test` installs them (bin/hnforge-test -> hnforge host-packages).

/** What `npm test -- --quick` needs (tests without a [root] or [qemu] tag). */
export const QUICK_TEST_PACKAGES: Readonly<Record<string, string>> = {
  'busybox-static': 'harness', // /bin/busybox: hn-boot.sh under ash, the synthetic stage3's userspace
  gpg: 'keys', // throwaway signing keys of the Gentoo contract tests
  'gpg-agent': 'keygen', // gpg --quick-gen-key cannot make a key without it
  gpgv: 'signatures', // the Gentoo stages verify the fixtures' signatures
  'xz-utils': 'fixtures', // the synthetic stage3 and snapshot are .tar.xz
  zstd: 'publish', // publishing compresses with it and the tests decompress as a node does
};

/** What the full suite needs on top of the quick set, the build and provisioning. */
export const FULL_TEST_PACKAGES: Readonly<Record<string, string>> = {
  'qemu-system-x86': 'boot', // the boot-chain tests boot images under qemu
  ovmf: 'firmware', // UEFI firmware for those boots (pipeline/qemu.ts)
  'docker-registry': 'registry', // a real OCI registry on 127.0.0.1 for the OCI client (test/publish)
  'apache2-utils': 'htpasswd', // bcrypt htpasswd file of the authenticated registry
  'nginx-light': 'http', // a web server on 127.0.0.1 serving a directory store to readers (test/publish)
  skopeo: 'pull', // pulls a published version from the OCI store as a node could (test/publish)
  shellcheck: 'lint', // the shell steps of the CI workflow files (test/ci-files.test.ts)
};
