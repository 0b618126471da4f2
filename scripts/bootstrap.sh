#!/bin/sh
# bootstrap.sh — install every Debian 12 package AfterSMTP needs to build,
# run and test.  Idempotent: asks apt only for what is missing, and runs
# `apt-get update` only when something is.  Must run as root (or via sudo)
# when packages are missing.
set -eu

PACKAGES="
make gcc clang libclang-rt-14-dev pkg-config meson ninja-build
protobuf-c-compiler libprotobuf-c-dev libsodium-dev libzstd-dev
libjansson-dev libcmocka-dev libsqlite3-dev libgnutls28-dev
libuv1-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev libunbound-dev libcurl4-gnutls-dev
libpsl-dev
faketime strace swaks
postfix nmap socat testssl.sh unbound ldnsutils
python3 python3-pytest python3-nacl python3-protobuf python3-zstandard python3-dkim python3-dnslib python3-aiosmtpd python3-authres
libmail-dkim-perl libnet-dns-perl python3-spf python3-authheaders
rspamd
dovecot-imapd isync mutt
protobuf-compiler
"

# The unprivileged account the node switches to when started as root
# (aftersmtpd's `user` setting).
account() {
	if ! getent passwd aftersmtp >/dev/null 2>&1; then
		if [ "$(id -u)" -eq 0 ]; then
			useradd --system --no-create-home --home-dir /var/lib/aftersmtp \
				--shell /usr/sbin/nologin aftersmtp
			echo "bootstrap: created the system account aftersmtp"
		elif command -v sudo >/dev/null 2>&1; then
			sudo useradd --system --no-create-home --home-dir /var/lib/aftersmtp \
				--shell /usr/sbin/nologin aftersmtp
		fi
	fi
}

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	echo "bootstrap: all $(echo $PACKAGES | wc -w) packages present"
	account
	exit 0
fi

echo "bootstrap: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "bootstrap: need root to install:$missing" >&2
		exit 1
	fi
fi
$SUDO apt-get update -q
# Postfix is a test peer and the benchmark baseline, started only with
# private configurations: install it without configuring a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" |
	$SUDO debconf-set-selections
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
# rspamd is a test oracle (tests/e2e/rspamdfixture.py starts a private
# instance per test module, its own config and ports): the package's own
# service is stopped and not started at boot.
case " $missing " in
*" rspamd "*)
	if command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable --now rspamd >/dev/null 2>&1 ||
			$SUDO systemctl disable rspamd >/dev/null 2>&1 || true
	fi
	if [ -x /etc/init.d/rspamd ]; then
		$SUDO invoke-rc.d rspamd stop >/dev/null 2>&1 || true
		$SUDO update-rc.d rspamd disable >/dev/null 2>&1 || true
	fi
	;;
esac
account
echo "bootstrap: done"
