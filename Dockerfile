# hnforge in a container, for build hosts that are not Debian 12 themselves.
# Image building needs loop devices, mounts and chroot, so run it privileged
# with the cache and output on volumes:
#   docker build -t hnforge .
#   docker run --rm --privileged -v /var/cache/hnforge:/var/cache/hnforge -v "$PWD/out:/opt/hnforge/out" \
#     hnforge build --profile hn-debian
# (Not built in this project's CI: its machines have no Docker engine.)
FROM node:20-bookworm-slim
# The packages of `hnforge host-packages --for build` and `--for provision`
# (derived from the commands the stages declare); test/unit/host-packages.test.ts
# fails when this list and those differ.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      btrfs-progs ca-certificates coreutils cpio dash dosfstools e2fsprogs findutils gdisk git gpg gpgv \
      grub-efi-amd64-bin gzip kmod mmdebstrap mount mtools openssl tar util-linux xz-utils zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hnforge
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENTRYPOINT ["/opt/hnforge/bin/hnforge"]
CMD ["--help"]
