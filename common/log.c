#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* Process-wide by nature (stderr/syslog are process-wide); set once at start. */
static enum log_target target = LOG_TO_STDERR;
static int max_lvl = LOG_INFO;

void log_setup(enum log_target t, int max_level, const char *ident)
{
	target = t;
	max_lvl = max_level;
	if (t == LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int log_level(void)
{
	return max_lvl;
}

void log_msg(int level, const char *fmt, ...)
{
	if (level > max_lvl)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (target == LOG_TO_SYSLOG) {
		vsyslog(level, fmt, ap);
	} else {
		static const char *const tag[] = { "emerg", "alert", "crit", "err",
						   "warning", "notice", "info", "debug" };
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "pcpd[%s]: %s\n", tag[level & 7], line);
	}
	va_end(ap);
}
