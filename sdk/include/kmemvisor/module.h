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

#include <kmemvisor/abi.h>

/* A loaded module, as the boot-info page's module table lists it. */
struct kmv_module {
    uint64_t base;     /* its first byte (the module header) */
    uint64_t size;     /* bytes to the end of its last page */
    uint64_t entry;    /* its entry function */
    uint64_t name_len; /* bytes of name in use */
    char name[KMV_MODULE_NAME_MAX];
};
_Static_assert(sizeof(struct kmv_module) == KMV_MODULE_INFO_SIZE, "struct kmv_module");
_Static_assert(__builtin_offsetof(struct kmv_module, entry) == KMV_MODULE_INFO_ENTRY_OFFSET, "kmv_module.entry");
_Static_assert(__builtin_offsetof(struct kmv_module, name) == KMV_MODULE_INFO_NAME_OFFSET, "kmv_module.name");

/* In an image: the modules loaded with --module, in command-line order;
 * *count is set to their number. */
const struct kmv_module *kmv_modules(unsigned *count);
/* The loaded module called `name`, or a null pointer. */
const struct kmv_module *kmv_find_module(const char *name);
/* Calls a module's entry function with `argument` on this vCPU's stack. */
uint64_t kmv_module_call(const struct kmv_module *module, uint64_t argument);

/* The entry the module header names (the module runtime's header.s). */
#define KMV_MODULE_ENTRY(function)                                                                              \
    uint64_t kmv_module_entry(uint64_t argument);                                                               \
    uint64_t kmv_module_entry(uint64_t argument)                                                                \
    {                                                                                                           \
        return function(argument);                                                                              \
    }

#endif /* KMEMVISOR_MODULE_H */
