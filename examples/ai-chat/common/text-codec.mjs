// A tiny text codec for @ably/ai-transport (core SDK, no Vercel/OpenAI deps).
//
// Messages are `{ id, role: 'user' | 'assistant', text }`.
//  - input  (`ai-input`):  a user message, published as one discrete part.
//  - output (`ai-output`): assistant text streamed as ONE Ably message that the
//    agent creates (`text-start`) and then grows with message appends
//    (`text-delta`, one per word) until it closes it (`text-end`). That is the
//    part that needs `mutableMessages` on the server.
//
// The SDK is passed in rather than imported, so this one file serves the
// browser bundle, the example's agent and the test suite (each with its own
// copy of the package): `createTextCodec(await import('@ably/ai-transport'))`.

export function createTextCodec({ defineCodec, strField }) {
  const fId = strField('id');
  const fMessageId = strField('messageId');

  const entryFor = (state, codecMessageId, role) => {
    let entry = state.messages.find((m) => m.codecMessageId === codecMessageId);
    if (!entry) {
      entry = { codecMessageId, message: { id: codecMessageId, role, text: '', done: false } };
      state.messages.push(entry);
    }
    return entry;
  };

  return defineCodec()({
    adapterTag: 'switchboard-text',
    reducer: {
      init: () => ({ messages: [] }),
      fold: (state, ev, meta) => {
        if (ev.direction === 'input') {
          if (ev.event.kind !== 'user-message') return state; // regenerate: wire-only
          const id = meta.messageId ?? ev.event.message.id;
          const entry = entryFor(state, id, ev.event.message.role ?? 'user');
          entry.message.id = ev.event.message.id || id;
          entry.message.text += ev.event.message.text;
          entry.message.done = true;
          return state;
        }
        if (meta.messageId === undefined) return state;
        const entry = entryFor(state, meta.messageId, 'assistant');
        const chunk = ev.event;
        if (chunk.type === 'text-delta') entry.message.text += chunk.delta;
        else if (chunk.type === 'text-end') entry.message.done = true;
        return state;
      },
      getMessages: (state) => state.messages,
    },
    output: ({ stream }) => [
      stream('text', {
        streamId: (c) => c.id,
        fields: [fId],
        start: { type: 'text-start' },
        delta: { type: 'text-delta', field: 'delta', decode: ({ rebuild }) => rebuild([fId]) },
        end: { type: 'text-end' },
      }),
    ],
    input: ({ event, batch }) => [
      event('regenerate', { wireOnly: true }),
      batch('user-message', {
        explode: (input) => [{ type: 'text', text: input.message.text }],
        partTypeOf: (part) => part.type,
        parts: (p) => [p('text', { data: { encode: (x) => x.text, decode: (d) => ({ text: String(d ?? '') }) } })],
        messageHeaders: (input) => {
          const codecHeaders = {};
          fMessageId.write(codecHeaders, input.message.id);
          return { codecHeaders, transportHeaders: { role: input.message.role ?? 'user' } };
        },
        assemble: (part, { codecHeaders, transportHeaders }) => ({
          message: { id: fMessageId.read(codecHeaders) ?? '', role: transportHeaders.role ?? 'user', text: part.text },
        }),
      }),
    ],
    factories: (base) => ({ createUserMessage: base.createUserMessage, createRegenerate: base.createRegenerate }),
  });
}

/** The text of a scripted answer as the list of outputs the agent pipes, one word per delta. */
export function* answerOutputs(id, text) {
  yield { type: 'text-start', id };
  const words = text.split(/(?<= )/); // keep the trailing space with each word
  for (const w of words) yield { type: 'text-delta', id, delta: w };
  yield { type: 'text-end', id };
}
