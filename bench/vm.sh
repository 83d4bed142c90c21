#!/usr/bin/env bash
# VM benchmark (docs/vm.md): the small guest from QEMU start to its first ping reply through
# the VM module against plain qemu-system-x86_64 on the same kernel, initramfs and disk, in the
# same run, and QEMU's memory beyond the guest's RAM. Prints markdown.
# Usage: sudo [KEEP=1] [TB_SIZE=MiB] bench/vm.sh [RUNS]   (default 5; KEEP=1 keeps the guest and
# logs; TB_SIZE gives the module's VMs a TCG translation cache of that size)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-5}
# A debug build: what is timed is QEMU and the guest; the Swift side is a few ms of seconds.
(cd "$here/.." && swift build --product vm-bench 2>&1 | tail -1) >&2
exec "$here/../.build/debug/vm-bench" "$runs"
