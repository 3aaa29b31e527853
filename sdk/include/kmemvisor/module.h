/*
 * <kmemvisor/module.h>: guest modules in C. A module is an object loaded
 * next to a guest's image (`kmemvisor run GUEST --module PATH`), linked at
 * one of the module slots, so that pincode and unpincode have more than one
 * loaded object to tell apart. It has no main: the image calls its one entry
 * function, named with KMV_MODULE_ENTRY:
 *
 *   static uint64_t triple(uint64_t argument) { return argument * 3; }
 *   KMV_MODULE_ENTRY(triple)
 *
 * Build it with the flags of `pkg-config --cflags --libs kmemvisor-module`
 * (slot 0; `--define-variable=slot=N` for slot N) or `kmemvisor cc
 * --module N`. The services, printf and the test support work as in an
 * image; vCPUs cannot be started and interrupt handlers cannot be
 * registered from a module.
 */
#ifndef KMEMVISOR_MODULE_H
#define KMEMVISOR_MODULE_H

#include <stdint.h>

/* The entry the module header names (the module runtime's header.s). */
#define KMV_MODULE_ENTRY(function)                                                                              \
    uint64_t kmv_module_entry(uint64_t argument);                                                               \
    uint64_t kmv_module_entry(uint64_t argument)                                                                \
    {                                                                                                           \
        return function(argument);                                                                              \
    }

#endif /* KMEMVISOR_MODULE_H */
