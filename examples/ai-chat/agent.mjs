// The agent: woken by POST /api/agent with an AI Transport invocation, it
// opens an agent session on the conversation's channel and streams a scripted
// answer into it, word by word (no model, no network). Tokens reach the
// user's devices over the session, not in the HTTP response.
import * as AIT from '@ably/ai-transport';
import { createTextCodec } from './common/text-codec.mjs';

export const codec = createTextCodec(AIT);

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** The scripted "model": a deterministic answer of about `words` words. */
export function scriptedAnswer(prompt, words = 60) {
  const filler = ('switchboard speaks the Ably protocol, so the AI Transport SDK streams this answer by ' +
    'appending each word to one message; every device of yours sees it live, a reload picks it up ' +
    'from history, and the stop button cancels it.').split(' ');
  const out = [];
  for (let i = 0; i < words; i++) out.push(`${filler[i % filler.length]}${i % 10 === 9 ? `(${i + 1})` : ''}`);
  return `You asked: "${prompt.slice(0, 200)}". ${out.join(' ')}.`;
}

/**
 * Starts a run for `invocationData` and returns once the run has started
 * (`{runId, invocationId}` for the HTTP response); the answer keeps streaming
 * in the background. `log` receives one line per event worth showing.
 */
export async function handleInvocation(realtime, invocationData, { wordDelayMs = 120, words = 60, log = () => {} } = {}) {
  const invocation = AIT.Invocation.fromJSON(invocationData);
  const session = AIT.createAgentSession({ client: realtime, channelName: invocation.sessionName, codec });
  session.on('error', (e) => log(`session error ${e.code}: ${e.message}`));
  await session.connect();
  const run = session.createRun(invocation, undefined, {
    // Who may stop this run? The server's cancelByTurnOwnerOnly rule already
    // refuses other users' cancels on this namespace; the agent checks again
    // (the SDK's own authorization hook), so the demo is safe on Ably too.
    onCancel: async ({ message, runId }) => {
      const owner = session.tree.getRunNode(runId)?.clientId;
      const allowed = message.clientId === owner;
      log(`cancel for run ${runId} from ${message.clientId} (owner ${owner}): ${allowed ? 'accepted' : 'refused'}`);
      return allowed;
    },
    onError: (e) => log(`run error ${e.code}: ${e.message}`),
  });
  run.located.catch(() => {});
  try {
    // The trigger was published before this session attached: page history in.
    while (run.view.hasOlder()) await run.view.loadOlder();
    await run.start();
  } catch (e) {
    await session.end().catch(() => {});
    throw e;
  }
  const prompt = run.view.getMessages().map(({ message }) => message).filter((m) => m.role === 'user').at(-1)?.text ?? '';
  log(`run ${run.runId} started for ${invocation.sessionName}: "${prompt}"`);

  const stream = async () => {
    const id = `text-${run.runId}`;
    const signal = run.abortSignal;
    async function* model() {
      yield { type: 'text-start', id };
      for (const word of scriptedAnswer(prompt, words).split(/(?<= )/)) {
        await sleep(wordDelayMs, signal);
        if (signal.aborted) return;
        yield { type: 'text-delta', id, delta: word };
      }
      yield { type: 'text-end', id };
    }
    try {
      const result = await run.pipe(model());
      const reason = signal.aborted ? 'cancelled' : result.reason;
      await run.end(reason === 'error' ? { reason: 'error' } : { reason });
      log(`run ${run.runId} ended: ${reason}`);
    } catch (e) {
      log(`run ${run.runId} failed: ${e.message}`);
    } finally {
      await session.end().catch(() => {});
    }
  };
  void stream();
  return { runId: run.runId, invocationId: run.invocationId };
}
