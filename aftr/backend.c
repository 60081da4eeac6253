/* Run-time choice of the kernel backend by its configured name. */
#include <string.h>

#include "aftr/backend.h"

static const struct kbackend_ops *const backends[] = {
	&kbackend_mem_ops,
};

const struct kbackend_ops *kbackend_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}
