// Umbrella for the CLinux target: every header in this folder is part of the module.
#ifndef CLINUX_H
#define CLINUX_H
#include "clinux_perf.h"
#include "clinux_sys.h"
#include "clinux_storage.h"
#include "clinux_bpf.h"
#include "clinux_vm.h"
#endif
