# hnforge in a container, for build hosts that are not Debian 12 themselves.
# Image building needs loop devices, mounts and chroot, so run it privileged
# with the cache and output on volumes:
#   docker build -t hnforge .
#   docker run --rm --privileged -v /var/cache/hnforge:/var/cache/hnforge -v "$PWD/out:/opt/hnforge/out" \
#     hnforge build --profile hn-debian
# (Not built in this project's CI: its machines have no Docker engine.)
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mmdebstrap e2fsprogs btrfs-progs dosfstools mtools gdisk fdisk util-linux mount \
      grub-efi-amd64-bin grub-common busybox-static cpio zstd kmod gpg gpgv xz-utils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hnforge
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENTRYPOINT ["/opt/hnforge/bin/hnforge"]
CMD ["--help"]
