#!/usr/bin/env bash
# Installs what `make demo` or `make test` needs and is missing.
#   scripts/deps.sh demo   PostgreSQL server binaries (unless KUZET_DATABASE_URL is set)
#   scripts/deps.sh test   PostgreSQL, ffmpeg/ffprobe, Chromium, promtool (Debian's prometheus package),
#                          GStreamer's RTSP server with its Python bindings (a third-party camera),
#                          and a MinIO server built with go install
# Debian/Ubuntu packages are installed with apt-get when running as root;
# otherwise the command to run is printed and the script fails.
set -euo pipefail

what=${1:-test}
cache=${KUZET_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuzet-test}
minio_version=$(sed -n 's/^const MinIOVersion = "\(.*\)"$/\1/p' "$(dirname "$0")/../internal/testenv/minio.go")

missing=()
have_pg_server() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if [ "$what" = test ] || [ -z "${KUZET_DATABASE_URL:-}" ]; then
	have_pg_server || missing+=(postgresql)
fi
if [ "$what" = test ]; then
	command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
	# promtool checks deploy/prometheus; Debian ships it in the prometheus package.
	command -v promtool >/dev/null 2>&1 || [ -n "${KUZET_TEST_PROMTOOL:-}" ] || missing+=(prometheus)
	# GStreamer's RTSP server serves a clip as a third-party camera in the ingest
	# tests (internal/testenv/rtspserver.go holds the same list).
	if [ -z "${KUZET_TEST_GST_PYTHON:-}" ] && command -v dpkg-query >/dev/null 2>&1; then
		for p in python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; do
			dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
		done
	fi
fi

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "deps: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "deps: missing ${missing[*]}; install them with:" >&2
		echo "  sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi

if [ "$what" = test ]; then
	minio="$cache/bin/minio"
	if [ ! -x "$minio" ] && [ -z "${KUZET_TEST_MINIO:-}" ]; then
		echo "deps: building the MinIO server $minio_version into $cache/bin (once; takes a few minutes)"
		mkdir -p "$cache/bin"
		(cd /tmp && GOBIN="$cache/bin" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$minio_version")
	fi
fi
echo "deps: ready for make $what"
