# Sourced by .ci/run (bash, set -euo pipefail): headless Chromium for the study report's browser check
# (Testing/browser_check.py, run by Testing/test_report.py). When Chromium is there, or can be installed with
# apt-get (as root or with passwordless sudo), RTRESPONSE_REQUIRE_BROWSER=1 is exported: the browser test then
# fails instead of skipping when Chromium cannot run. Otherwise one line says why the check will be skipped.

_ci_chromium() {  # the Chromium browser_check.py would use ($CHROMIUM, chromium, chromium-browser, google-chrome)
  local name
  for name in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
    if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

_ci_as_root() {  # the command as root: directly, or with passwordless sudo
  if [ "$(id -u)" = 0 ]; then
    "$@"
  else
    sudo -n "$@"
  fi
}

_ci_apt_install_chromium() {
  _ci_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
}

ensure_chromium() {
  local found why="" log
  if ! found="$(_ci_chromium)"; then
    if ! command -v apt-get >/dev/null 2>&1; then
      why="Chromium is not installed and there is no apt-get to install it (install chromium, or set \$CHROMIUM)"
    elif [ "$(id -u)" != 0 ] && ! { command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; }; then
      why="Chromium is not installed and apt-get needs root or passwordless sudo (apt-get install chromium)"
    else
      echo "ci: installing chromium with apt-get for the browser check"
      log="$(mktemp)"
      if ! _ci_apt_install_chromium >"$log" 2>&1; then  # the package lists may be missing or stale: update once
        if ! { _ci_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq && _ci_apt_install_chromium; } \
            >>"$log" 2>&1; then
          why="apt-get install chromium failed: $(tail -n 1 "$log")"
        fi
      fi
      rm -f "$log"
      if [ -z "$why" ] && ! found="$(_ci_chromium)"; then
        why="apt-get installed chromium, but no chromium command is on the PATH"
      fi
    fi
  fi
  if [ -n "$why" ]; then
    echo "ci: the browser check of the study report will be SKIPPED: $why"
    return 0
  fi
  export RTRESPONSE_REQUIRE_BROWSER=1
  echo "ci: browser check required (RTRESPONSE_REQUIRE_BROWSER=1) with $found"
}
