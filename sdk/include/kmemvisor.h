/*
 * <kmemvisor.h>: everything a kmemvisor C guest needs, in one include.
 *
 * A guest is an ordinary C program: `int main(int argc, char **argv)` runs on
 * vCPU 0 with the words after `--` on the `kmemvisor run` command line as its
 * arguments, and its return value becomes the exit status of `kmemvisor run`.
 * Build it with the flags of `pkg-config --cflags --libs kmemvisor` (or
 * `kmemvisor cc`); README.md in the SDK's share/doc says more.
 */
#ifndef KMEMVISOR_H
#define KMEMVISOR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmemvisor/abi.h>
#include <kmemvisor/runtime.h>
#include <kmemvisor/dgux.h>
#include <kmemvisor/aix.h>
#include <kmemvisor/dma.h>
#include <kmemvisor/module.h>
#include <kmemvisor/test.h>

#endif /* KMEMVISOR_H */
