# Sourced by the ensure-*.sh scripts: what each does once it has found something missing.
# apt_install SCRIPT HINT PACKAGE...: installs the Debian packages quietly (sudo when not root,
# left in SUDO for what the caller runs after), or, with no apt-get here, prints
# "SCRIPT: HINT" and exits 1.
apt_install() {
  local script=$1 hint=$2
  shift 2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$script: $hint" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
  fi
  echo "$script: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
