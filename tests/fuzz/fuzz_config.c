/* Config fuzz target: no crash or leak, and whatever loads prints to a
 * form that loads again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct pcpd_config *c = pcpd_config_load_buf(text, "fuzz", NULL);
	free(text);
	if (!c)
		return 0;

	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		abort();
	pcpd_config_print(c, f);
	if (fclose(f) != 0)
		abort();
	struct pcpd_config *again = pcpd_config_load_buf(out, "fuzz-printed", stderr);
	if (!again) {
		fprintf(stderr, "printed config does not load:\n%s", out);
		abort();
	}
	pcpd_config_free(again);
	pcpd_config_free(c);
	free(out);
	return 0;
}
