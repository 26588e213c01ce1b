#!/bin/bash
# openssl-lts.sh: build OpenSSL 3.5 LTS from Debian 13's own source package
# into a cached prefix, for mtlsd on a Debian 12 host (meson -Dopenssl=lts).
#
# Why: Debian 12 ships OpenSSL 3.0, which spends 2.1-2.4x more CPU per TLS
# 1.3 handshake than 3.5 LTS on the same machine (docs/benchmarks.md).
# Debian 13 ships 3.5: its source package is Debian's patched, supported
# tree, so this builds exactly what a trixie host runs, and nothing else.
#
#   tools/openssl-lts.sh            build (or reuse) and print the prefix
#   tools/openssl-lts.sh --prefix   print the cached prefix, build nothing
#                                   (exit 1 if none is built yet)
#
# The host's apt configuration is untouched: the trixie deb-src entry lives
# in a private sources list under the cache. The version is whatever the
# archive resolves for openssl/trixie today (never pinned: a pinned version
# vanishes from the mirror with the next point release); if the Sources
# index names a version whose files are not on the mirror yet, the other
# listed version is tried. The prefix is keyed by that version:
#   ${MTLSD_LTS_CACHE:-/var/cache/mtlsd/openssl-lts}/<version>/
# and <cache>/current points at the newest one built.
#
# Built with enable-ktls and, as Debian 13's own build, enable-zstd and
# enable-zlib (RFC 8879 certificate compression; Debian 12's libzstd1 and
# zlib1g), libraries and provider modules (the legacy
# provider, which `provider = legacy` loads) only: no tests, docs or apps. The
# OPENSSLDIR is the system's /usr/lib/ssl, so the host's openssl.cnf and
# CA store apply as they do for the system library; engines-3 points at
# the system's engine directory, so Debian's libp11 engine (built against
# 3.0; OpenSSL keeps the ABI within 3.x) is found by its id.
set -euo pipefail

cache=${MTLSD_LTS_CACHE:-/var/cache/mtlsd/openssl-lts}
# Bumped whenever the build below changes, so a cached prefix built by an
# older recipe is rebuilt rather than silently reused.
recipe=3
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

if [ "${1:-}" = "--prefix" ]; then
	if [ -e "$cache/current/lib/libssl.so" ]; then
		readlink -f "$cache/current"
		exit 0
	fi
	echo "openssl-lts: nothing built in $cache yet: run tools/openssl-lts.sh" >&2
	exit 1
fi

say() { echo "openssl-lts: $*" >&2; }

mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/apt/etc/preferences.d" \
	"$cache/apt/etc/sources.list.d" "$cache/src"
cat > "$cache/apt/etc/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
apt_opts=(
	-o "Dir::Etc::sourcelist=$cache/apt/etc/sources.list"
	-o "Dir::Etc::sourceparts=$cache/apt/etc/sources.list.d"
	-o "Dir::Etc::preferencesparts=$cache/apt/etc/preferences.d"
	-o "Dir::State::Lists=$cache/apt/lists"
	-o "Dir::Cache=$cache/apt/cache"
	-o "APT::Get::List-Cleanup=0"
	-o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=root"
)

say "resolving openssl/trixie from Debian's archive"
if ! apt-get "${apt_opts[@]}" -qq update >&2; then
	if [ -e "$cache/current/.complete" ]; then
		say "cannot reach Debian's archive: keeping the cached $(cat "$cache/current/.complete")"
		readlink -f "$cache/current"
		exit 0
	fi
	say "cannot reach Debian's archive and nothing is cached in $cache"
	exit 1
fi
mapfile -t versions < <(apt-cache "${apt_opts[@]}" showsrc openssl 2>/dev/null |
	awk '/^Version:/ {print $2}' | sort -rV | uniq)
if [ ${#versions[@]} -eq 0 ]; then
	say "the trixie Sources index lists no openssl (is deb.debian.org reachable?)"
	exit 1
fi

for version in "${versions[@]}"; do
	upstream=${version%-*}
	upstream=${upstream#*:}
	prefix="$cache/$version"
	if [ -e "$prefix/lib/libssl.so" ] && [ "$(cat "$prefix/.complete" 2>/dev/null)" = "$version recipe $recipe" ]; then
		say "OpenSSL $version already built in $prefix"
		ln -sfn "$version" "$cache/current"
		echo "$prefix"
		exit 0
	fi
	work="$cache/src/$version"
	rm -rf "$work" "$prefix"
	mkdir -p "$work"
	say "downloading the source package openssl=$version"
	if ! (cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only "openssl=$version" >&2); then
		say "openssl=$version is listed but not on the mirror; trying the next version"
		rm -rf "$work"
		continue
	fi
	dsc=$(ls "$work"/openssl_*.dsc | head -n1)
	say "unpacking $(basename "$dsc") with Debian's patches"
	(cd "$work" && dpkg-source --no-check -x "$dsc" tree >&2)
	say "building the libraries (a few minutes on 2 cores)"
	(
		cd "$work/tree"
		./Configure linux-x86_64 --prefix="$prefix" --libdir=lib --openssldir=/usr/lib/ssl \
			shared enable-ktls enable-zstd enable-zlib no-tests no-docs no-apps "-Wl,-rpath,$prefix/lib" >&2
		# One target per make: in one parallel make the two targets race to
		# generate the same perlasm sources.
		make -s -j"$(nproc)" build_libs >&2
		make -s -j"$(nproc)" build_modules >&2
		make -s install_dev install_modules >&2
	)
	# Engines by id come from the system's directory (libp11's pkcs11.so).
	rm -rf "$prefix/lib/engines-3"
	ln -s "/usr/lib/$multiarch/engines-3" "$prefix/lib/engines-3"
	echo "$version recipe $recipe" > "$prefix/.complete"
	ln -sfn "$version" "$cache/current"
	rm -rf "$work"
	say "OpenSSL $upstream (Debian $version) is in $prefix"
	echo "$prefix"
	exit 0
done
say "no listed openssl version could be downloaded: ${versions[*]}"
exit 1
