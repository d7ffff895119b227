// SPDX-License-Identifier: GPL-2.0
/*
 * The benchmark's floor: programs that do nothing, attached where the
 * plugin's programs are (bench/baseline.c loads them). Their cost per
 * invocation, from the kernel's own run-time statistics, is what any program
 * on these hooks costs: the dispatch, and the two clock reads of the
 * statistics themselves.
 */
#include "kernel_types.h" /* bpf/: the plugin's own minimal kernel types */
#include <bpf/bpf_helpers.h>

SEC("tp_btf/inet_sock_set_state")
int empty_tp_btf(unsigned long long *ctx)
{
  return 0;
}

SEC("sockops")
int empty_sockops(struct bpf_sock_ops *skops)
{
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
