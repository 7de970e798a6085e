#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis.h>
#include <read.h>

/// The reader's "no reply yet" sentinel is a NULL out-parameter; Swift reads it as an
/// optional pointer, so no helper is needed for that. These helpers cover what Swift
/// cannot import directly.

/// Casts the opaque reply handed out by the reader to the reply struct.
static inline redisReply *CHiredis_asReply(void *reply) {
    return (redisReply *)reply;
}

/// Frees a command buffer made by redisFormatCommandArgv (a macro-free wrapper).
static inline void CHiredis_freeCommand(char *command) {
    redisFreeCommand(command);
}

#endif
