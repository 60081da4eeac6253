/* Secret files: the only place the hook reads credentials. The mode check
 * is the point: a TSIG key anyone on the box can read lets them rewrite
 * every subscriber's DNS. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ddns-hook/provider.h"

int ddns_secret_read(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "secret file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "secret file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "secret file %s: mode %04o lets group or others access it; chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	size_t n = 0;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "secret file %s: %s", path, strerror(errno));
			close(fd);
			memset(buf, 0, len);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	char extra;
	if (n + 1 >= len && read(fd, &extra, 1) == 1) {
		snprintf(err, errlen, "secret file %s: longer than %zu bytes", path, len - 1);
		close(fd);
		memset(buf, 0, len);
		return -1;
	}
	close(fd);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (!n) {
		snprintf(err, errlen, "secret file %s: empty", path);
		return -1;
	}
	return (int)n;
}
