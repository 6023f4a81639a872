/*
 * LD_PRELOAD shim for the test cluster's JVMs: a bind() to the wildcard address
 * (0.0.0.0 or ::) binds to the loopback address instead.
 *
 * Hadoop has settings for most of its listening addresses, and scripts/hadoop_cluster.py
 * sets them all to 127.0.0.1, but some servers bind every interface with no setting to
 * say otherwise: the MapReduce ShuffleHandler (only mapreduce.shuffle.port exists) and,
 * in every MapReduce ApplicationMaster, the client service, the task umbilical and the
 * web app (only port ranges exist). Built with `cc -shared -fPIC` at cluster start and
 * preloaded into the daemons and, through yarn.nodemanager.admin-env, into containers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn real_bind;
    if (!real_bind)
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (memcmp(&in6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            /* IPv4-mapped 127.0.0.1: reachable from IPv4 and dual-stack clients alike */
            inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}
