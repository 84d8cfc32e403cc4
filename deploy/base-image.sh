#!/usr/bin/env bash
# Make a Debian bookworm base image without an image registry: debootstrap (minbase + python3,
# python3-venv, python3-pip) into var/deploy/, then `docker import`. Cached: the image when it exists,
# else the rootfs tarball. Prints the image name. Mirror: DEBIAN_MIRROR, else the machine's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${BASE_IMAGE_TAG:-gomodel-base:bookworm}"
DIR="var/deploy"
TARBALL="$DIR/bookworm-rootfs.tar"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi
mkdir -p "$DIR"
if [ ! -s "$TARBALL" ]; then
  mirror="${DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}')
  fi
  if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" && $2 !~ /\[/ && $2 ~ /debian\/?$/ {print $2; exit}')
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  root="$DIR/bookworm-rootfs"
  rm -rf "$root"
  echo "base-image: debootstrap bookworm from $mirror into $root" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >&2
  # apt inside the image uses the same mirror; no caches or logs in the image.
  echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar -C "$root" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$root"
fi
echo "base-image: docker import $TARBALL as $IMAGE" >&2
docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$TARBALL" "$IMAGE" >&2
echo "$IMAGE"
