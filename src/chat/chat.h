/* chat.h: the Ably Chat REST API (what the npm @ably/chat SDK calls, v4),
 * on top of the channel of each room ("<room>::$chat", core/channel.h):
 *
 *   POST   /chat/v4/rooms/{room}/messages                      send
 *   GET    /chat/v4/rooms/{room}/messages                      history (paged)
 *   GET    /chat/v4/rooms/{room}/messages/{serial}             one message
 *   PUT    /chat/v4/rooms/{room}/messages/{serial}             update
 *   POST   /chat/v4/rooms/{room}/messages/{serial}/delete      delete
 *   GET    /chat/v4/rooms/{room}/messages/{serial}/versions    its versions (paged)
 *   POST   /chat/v4/rooms/{room}/messages/{serial}/reactions   add a message reaction
 *   DELETE /chat/v4/rooms/{room}/messages/{serial}/reactions   remove one (?type=&name=)
 *   GET    /chat/v4/rooms/{room}/messages/{serial}/client-reactions  a client's reactions
 *   GET    /chat/v4/rooms/{room}/occupancy                     {connections, presenceMembers}
 *
 * A chat message is a channel message named "chat.message" whose data is the
 * JSON {"text", "metadata"} and whose extras carry {"headers"}; updates and
 * deletes are message versions (core/mutation.h) and reactions annotations
 * of type "reaction:<unique|distinct|multiple>.v1" (core/annotation.h), so
 * realtime subscribers of the room's channel see what the SDK expects, and
 * the capabilities are the channel's (a room's name is its resource, see
 * auth/capability.h). Requests authenticate as the REST API's do; replies
 * are the SDK's REST message shape (serial, version, text, clientId,
 * action, metadata, headers, userClaim, timestamp, reactions), sent once
 * the change is durable. */
#ifndef SW_CHAT_CHAT_H
#define SW_CHAT_CHAT_H

#include <stdbool.h>

typedef struct sw_sock sw_sock_t;
struct sw_http_req;

/* True when the request's path is the Chat API's ("/chat/..."). */
bool chat_route(const struct sw_http_req *req);

/* Handles one Chat API request. */
void chat_handle(sw_sock_t *s, const struct sw_http_req *req);

#endif
