#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis.h>
#include <read.h>

/// The reader's "no reply yet" sentinel is a NULL out-parameter; Swift reads it as an
/// optional pointer, so no helper is needed for that. These helpers cover what Swift
/// cannot import directly.

/// Frees a command buffer made by redisFormatCommandArgv (a macro-free wrapper).
static inline void CHiredis_freeCommand(char *command) {
    redisFreeCommand(command);
}

#include <stdlib.h>
#include <string.h>

/// A reply decoded flat: nodes in reading order (an array node is followed by its elements, depth first)
/// and every string's bytes in one buffer. hiredis's default functions make one heap object per element
/// and one per string, which for a stream read of a thousand entries is tens of thousands of
/// `malloc`/`free` pairs; these functions append to two growing buffers, reused from reply to reply.
typedef struct {
    int type;            /* REDIS_REPLY_* */
    long long value;     /* integer value; element count of an array (-1 for a nil array) */
    size_t offset;       /* string bytes: offset in `bytes` */
    size_t length;       /* string bytes: length */
} CHiredisNode;

typedef struct {
    CHiredisNode *nodes;
    size_t count;
    size_t capacity;
    char *bytes;
    size_t used;
    size_t size;
    int failed;          /* an allocation failed: the reply is incomplete */
} CHiredisFlatReply;

static inline CHiredisNode *CHiredis_flatAppend(const redisReadTask *task, int type) {
    CHiredisFlatReply *flat = (CHiredisFlatReply *)task->privdata;
    if (flat->count == flat->capacity) {
        size_t capacity = flat->capacity ? flat->capacity * 2 : 64;
        CHiredisNode *nodes = (CHiredisNode *)realloc(flat->nodes, capacity * sizeof(CHiredisNode));
        if (!nodes) { flat->failed = 1; return NULL; }
        flat->nodes = nodes;
        flat->capacity = capacity;
    }
    CHiredisNode *node = &flat->nodes[flat->count++];
    node->type = type;
    node->value = 0;
    node->offset = 0;
    node->length = 0;
    return node;
}

/// The object handed back to hiredis: never dereferenced by it, only checked for NULL (allocation failure).
static inline void *CHiredis_flatObject(const redisReadTask *task, CHiredisNode *node) {
    return node ? task->privdata : NULL;
}

static inline void *CHiredis_flatString(const redisReadTask *task, char *str, size_t len) {
    CHiredisFlatReply *flat = (CHiredisFlatReply *)task->privdata;
    CHiredisNode *node = CHiredis_flatAppend(task, task->type);
    if (!node) return NULL;
    if (flat->used + len > flat->size) {
        size_t size = flat->size ? flat->size * 2 : 4096;
        while (size < flat->used + len) size *= 2;
        char *bytes = (char *)realloc(flat->bytes, size);
        if (!bytes) { flat->failed = 1; return NULL; }
        flat->bytes = bytes;
        flat->size = size;
    }
    if (len) memcpy(flat->bytes + flat->used, str, len);
    node->offset = flat->used;
    node->length = len;
    flat->used += len;
    return CHiredis_flatObject(task, node);
}

static inline void *CHiredis_flatArray(const redisReadTask *task, int elements) {
    CHiredisNode *node = CHiredis_flatAppend(task, REDIS_REPLY_ARRAY);
    if (node) node->value = elements;
    return CHiredis_flatObject(task, node);
}

static inline void *CHiredis_flatInteger(const redisReadTask *task, long long value) {
    CHiredisNode *node = CHiredis_flatAppend(task, REDIS_REPLY_INTEGER);
    if (node) node->value = value;
    return CHiredis_flatObject(task, node);
}

static inline void *CHiredis_flatNil(const redisReadTask *task) {
    return CHiredis_flatObject(task, CHiredis_flatAppend(task, REDIS_REPLY_NIL));
}

/// Nothing to free per object: the buffers belong to the `CHiredisFlatReply`.
static inline void CHiredis_flatFree(void *object) {
    (void)object;
}

static redisReplyObjectFunctions CHiredis_flatFunctions = {
    CHiredis_flatString, CHiredis_flatArray, CHiredis_flatInteger, CHiredis_flatNil, CHiredis_flatFree,
};

/// A reader that decodes into `flat`, which must outlive it.
static inline redisReader *CHiredis_flatReaderCreate(CHiredisFlatReply *flat) {
    redisReader *reader = redisReaderCreateWithFunctions(&CHiredis_flatFunctions);
    if (reader) reader->privdata = flat;
    return reader;
}

/// Empties `flat` for the next reply, keeping its buffers.
static inline void CHiredis_flatReset(CHiredisFlatReply *flat) {
    flat->count = 0;
    flat->used = 0;
    flat->failed = 0;
}

/// Frees `flat`'s buffers.
static inline void CHiredis_flatRelease(CHiredisFlatReply *flat) {
    free(flat->nodes);
    free(flat->bytes);
    flat->nodes = NULL;
    flat->bytes = NULL;
    flat->count = flat->capacity = flat->used = flat->size = 0;
}

#endif
