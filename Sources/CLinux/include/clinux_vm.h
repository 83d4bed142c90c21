// The few ioctls brand kvm needs (docs/vm.md): Swift cannot call the variadic ioctl(2), and
// struct ifreq and the KVM_* request numbers are macros the importer does not see.
#ifndef CLINUX_VM_H
#define CLINUX_VM_H

// signalfd(2) and struct signalfd_siginfo for `vmadm console` (ConsoleClient), which the Glibc
// module does not export.
#include <sys/signalfd.h>

// Opens /dev/net/tun and creates (or attaches to) the tap `name` with IFF_TAP | IFF_NO_PI,
// plus IFF_VNET_HDR when `vnet_hdr` is set (QEMU's virtio-net then passes offloads through).
// The tap is created in the network namespace of the calling thread and is not persistent:
// it is gone when the last descriptor on it is closed. Returns the fd (O_CLOEXEC) or -1.
int clinux_tap_open(const char *name, int vnet_hdr);

// KVM_GET_API_VERSION on an open /dev/kvm (12 on every kernel since 2.6.22), or -1.
int clinux_kvm_api_version(int kvm_fd);

// KVM_CREATE_VM with the default machine type: returns the VM's fd or -1 with errno.
int clinux_kvm_create_vm(int kvm_fd);

// KVM_CHECK_EXTENSION: > 0 when the extension is there, 0 when not, -1 on error.
int clinux_kvm_check_extension(int kvm_fd, int extension);

// KVM_CAP_* numbers the probe asks about.
enum {
    CLINUX_KVM_CAP_USER_MEMORY = 3,
    CLINUX_KVM_CAP_NR_VCPUS = 9,
};

#endif
