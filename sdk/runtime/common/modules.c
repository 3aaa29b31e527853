/* The module table of the boot-info page (<kmemvisor/module.h>). */
#include <kmemvisor.h>

const struct kmv_module *kmv_modules(unsigned *count)
{
    uint64_t n = *(const uint64_t *)(KMV_BOOT_INFO_VA + KMV_BOOT_INFO_MODULE_COUNT_OFFSET);
    /* The VMM writes the page; a count beyond the table is clamped all the same. */
    *count = n < KMV_MAX_MODULES ? (unsigned)n : KMV_MAX_MODULES;
    return (const struct kmv_module *)(KMV_BOOT_INFO_VA + KMV_BOOT_INFO_MODULES_OFFSET);
}

const struct kmv_module *kmv_find_module(const char *name)
{
    unsigned count;
    const struct kmv_module *table = kmv_modules(&count);
    size_t length = strlen(name);
    for (unsigned i = 0; i < count; i++) {
        if (table[i].name_len == length && length <= KMV_MODULE_NAME_MAX && memcmp(table[i].name, name, length) == 0)
            return &table[i];
    }
    return 0;
}

uint64_t kmv_module_call(const struct kmv_module *module, uint64_t argument)
{
    if (!module || module->entry == 0)
        kmv_panic("kmv_module_call of a module with no entry function");
    uint64_t (*entry)(uint64_t) = (uint64_t (*)(uint64_t))module->entry;
    return entry(argument);
}
