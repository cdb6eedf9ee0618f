/*
 * Replies for the unit tests of the parts that read Redis replies: RESP
 * text read with hiredis's own reader, as the module and mpnctl read it.
 */

#ifndef UNIT_REPLY_H
#define UNIT_REPLY_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>


/* a string literal as the (pointer, length) pair the pure parts take */
#define S(s)  s, sizeof(s) - 1


/* the reply `text` encodes; the caller frees it with freeReplyObject() */

static redisReply *
resp(const char *text)
{
    void         *reply;
    redisReader  *r;

    r = redisReaderCreate();
    assert_non_null(r);
    assert_int_equal(redisReaderFeed(r, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);

    return reply;
}

#endif /* UNIT_REPLY_H */
