#!/usr/bin/env bash
# Builds the Debian package mintgate_<version>_<arch>.deb from a built binary, without
# debhelper and without root (dpkg-deb --root-owner-group makes every file root's):
#
#   scripts/package-deb.sh [BINARY] [OUTDIR]
#
# BINARY defaults to build/release/mintgate, OUTDIR to build/ (both in the source tree).
# Prints the .deb's path on standard output; what it does goes to standard error.
# The version is packaging/changelog's, whose upstream part must be CMakeLists.txt's
# project VERSION (and the binary's --version). Env: DEB_MAINTAINER overrides the
# Maintainer field, DEB_HOST_ARCH the architecture (default: dpkg's).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$root/build/release/mintgate}
outdir=${2:-$root/build}
pkg=$root/packaging
maintainer=${DEB_MAINTAINER:-mintgate maintainers <maintainers@mintgate.invalid>}

die() {
  echo "package-deb: $*" >&2
  exit 1
}
for tool in dpkg-deb dpkg-shlibdeps dpkg-parsechangelog strip gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils gzip)"
done
[[ -f $binary && -x $binary ]] || die "no executable binary at $binary (build it first)"
for f in mintgate.service mintgate.toml mintgate.logrotate mintgate.1 postinst prerm postrm \
  copyright changelog README.Debian; do
  [[ -f $pkg/$f ]] || die "missing $pkg/$f"
done

# --- version: changelog == CMake project VERSION (== the binary's, when it runs here)
cmake_version=$(sed -n 's/^project(mintgate VERSION \([0-9][0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[[ -n $cmake_version ]] || die "no project(mintgate VERSION x.y.z) in CMakeLists.txt"
version=$(dpkg-parsechangelog -l "$pkg/changelog" -S Version)
upstream=${version#*:}
upstream=${upstream%-*}
[[ $upstream == "$cmake_version" ]] ||
  die "packaging/changelog is at $version but CMakeLists.txt at $cmake_version: add a changelog entry (dch -v $cmake_version-1)"
if binary_version=$("$binary" --version 2>/dev/null); then
  [[ $binary_version == "mintgate $cmake_version" ]] ||
    die "$binary says '$binary_version', not mintgate $cmake_version: rebuild it"
fi
arch=${DEB_HOST_ARCH:-$(dpkg --print-architecture)}
# Reproducible: file times and the archive's from the changelog entry.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$pkg/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 022
# dpkg-shlibdeps wants the tree where a source package keeps it: debian/<package>.
stage=$tmp/debian/mintgate
doc=$stage/usr/share/doc/mintgate

install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/mintgate" "$stage/etc/logrotate.d" \
  "$stage/lib/systemd/system" "$doc" "$stage/usr/share/man/man1"
install -m 0755 "$binary" "$stage/usr/bin/mintgate"
# As dh_strip does for executables (debug symbols are not shipped).
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/mintgate"
# The build tree's RUNPATH (CMake adds the folder of every library it links by path, such as
# pkg-config's mit-krb5 folder of the -dev package's symlinks) is no use installed: the
# libraries are in the default search path. Drop DT_RUNPATH/DT_RPATH as `chrpath -d` does.
python3 - "$stage/usr/bin/mintgate" <<'PY' || die "cannot remove the RUNPATH"
import struct, sys
DT_NULL, DT_RPATH, DT_RUNPATH, PT_DYNAMIC = 0, 15, 29, 2
with open(sys.argv[1], "r+b") as f:
    elf = bytearray(f.read())
    if elf[:4] != b"\x7fELF":
        sys.exit("not an ELF file")
    wide = elf[4] == 2                       # ELFCLASS64
    end = "<" if elf[5] == 1 else ">"        # ELFDATA2LSB
    if wide:
        phoff, = struct.unpack_from(end + "Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from(end + "HH", elf, 0x36)
        phdr, entry = end + "IIQQQQQQ", end + "qQ"
    else:
        phoff, = struct.unpack_from(end + "I", elf, 0x1C)
        phentsize, phnum = struct.unpack_from(end + "HH", elf, 0x2A)
        phdr, entry = end + "IIIIIIII", end + "iI"
    size = struct.calcsize(entry)
    for i in range(phnum):
        fields = struct.unpack_from(phdr, elf, phoff + i * phentsize)
        if fields[0] != PT_DYNAMIC:
            continue
        offset, filesz = (fields[2], fields[5]) if wide else (fields[1], fields[4])
        count = filesz // size
        entries = [struct.unpack_from(entry, elf, offset + k * size) for k in range(count)]
        kept = []
        for tag, value in entries:
            if tag == DT_NULL:
                break
            if tag not in (DT_RPATH, DT_RUNPATH):
                kept.append((tag, value))
        kept += [(DT_NULL, 0)] * (count - len(kept))
        for k, (tag, value) in enumerate(kept):
            struct.pack_into(entry, elf, offset + k * size, tag, value)
    f.seek(0)
    f.write(elf)
PY
if readelf -d "$stage/usr/bin/mintgate" 2>/dev/null | grep -Eq '\((RPATH|RUNPATH)\)'; then
  die "the staged binary still has an RPATH/RUNPATH"
fi
install -m 0644 "$pkg/mintgate.toml" "$stage/etc/mintgate/mintgate.toml"
install -m 0644 "$pkg/mintgate.logrotate" "$stage/etc/logrotate.d/mintgate"
install -m 0644 "$pkg/mintgate.service" "$stage/lib/systemd/system/mintgate.service"
install -m 0644 "$pkg/copyright" "$pkg/README.Debian" "$doc/"
gzip -9n <"$pkg/changelog" >"$doc/changelog.Debian.gz"
gzip -9n <"$pkg/mintgate.1" >"$stage/usr/share/man/man1/mintgate.1.gz"
chmod 0644 "$doc/changelog.Debian.gz" "$stage/usr/share/man/man1/mintgate.1.gz"
if [[ -f $pkg/lintian-overrides ]]; then
  install -D -m 0644 "$pkg/lintian-overrides" "$stage/usr/share/lintian/overrides/mintgate"
fi
# /var/lib/mintgate and /var/log/mintgate are not shipped: the postinst makes them with
# their owner and mode, and a purge removes them.

install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$stage/DEBIAN/"
printf '%s\n' /etc/logrotate.d/mintgate /etc/mintgate/mintgate.toml >"$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

# --- Depends: the shared libraries the binary links, as dpkg-shlibdeps names them
printf 'Source: mintgate\n\nPackage: mintgate\nArchitecture: any\n' >"$tmp/debian/control"
shlibs=$(cd "$tmp" && dpkg-shlibdeps -O -e debian/mintgate/usr/bin/mintgate 2>"$tmp/shlibdeps.err") ||
  die "dpkg-shlibdeps failed: $(cat "$tmp/shlibdeps.err")"
shlibs=$(sed -n 's/^shlibs:Depends=//p' <<<"$shlibs")
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no library dependencies"

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"
installed_size=$(du -k -s --apparent-size --exclude=DEBIAN "$stage" | cut -f1)

cat >"$stage/DEBIAN/control" <<CONTROL
Package: mintgate
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: adduser, $shlibs
Recommends: logrotate
Section: net
Priority: optional
Description: HTTPS-inspection forward proxy with CA migration
 mintgate is an on-premises forward proxy for HTTP and for HTTPS through
 CONNECT. Ordered rules decide per connection whether to decrypt, tunnel or
 block; decrypted connections get leaf certificates minted on the fly and
 signed by the CA the rule names.
 .
 It moves clients from one inspection CA to another without a flag day: CA
 profiles retire in favour of a successor at a set time, canaries and a
 readiness report show which clients already trust the new root, and a
 portal hands out the CAs to install.
 .
 This package runs it as a sandboxed systemd service under its own user.
CONTROL
chmod 0644 "$stage/DEBIAN/control"

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$outdir"
deb=$(cd "$outdir" && pwd)/mintgate_${version#*:}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
