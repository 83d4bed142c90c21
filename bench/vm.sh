#!/usr/bin/env bash
# VM benchmark (docs/vm.md): the small guest from QEMU start to its first ping reply through
# the VM module against plain qemu-system-x86_64 on the same kernel, initramfs and disk, in the
# same run, and QEMU's memory beyond the guest's RAM. Prints markdown.
# Usage: sudo bench/vm.sh [RUNS]   (default 5; KEEP=1 keeps the guest and logs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-5}
(cd "$here/.." && swift build -c release --product vm-bench 2>&1 | tail -1) >&2
exec "$here/../.build/release/vm-bench" "$runs"
