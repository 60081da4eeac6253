/* Shared by the config loader's files (config.c: the parse and the core
 * sections; config_ddns.c: the ddns section). Valid only during a parse. */
#ifndef PCPD_CONFIG_INT_H
#define PCPD_CONFIG_INT_H

#include <confuse.h>
#include <limits.h>
#include <stdbool.h>

#include "pcpd/config.h"

#define SEC_MARK UINT_MAX            /* record index: "this section was seen" */
/* Holds a titled section's opening line. '|' is libconfuse's section
 * path separator, so no file can name this option. */
#define SECLINE_OPT "|line"

void report(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fail(cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rec_add(const void *key, unsigned idx, int line);
int rec_find(const void *key, unsigned idx);
bool note_value(cfg_t *cfg, cfg_opt_t *opt);
int opt_line(cfg_t *sec, const char *name, unsigned idx);
int sec_line(cfg_t *sec);
int cb_uint(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res);
int cb_bool(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res);
int cb_secline(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res);
int on_section_end(cfg_t *cfg, cfg_opt_t *opt);

extern cfg_opt_t ddns_opts[];
/* Fills c->ddns from the parsed tree, reporting errors with lines. */
void get_ddns(cfg_t *root, struct pcpd_config *c);

#endif
