// The browser client: an Ably Realtime client authenticated through
// authCallback (the app's token endpoint), an AI Transport client session on
// the user's conversation channel, a prompt box, the streamed answer, a stop
// button. Bundled into public/app.js by build.mjs.
import * as Ably from 'ably';
import * as AIT from '@ably/ai-transport';
import { createTextCodec } from '../common/text-codec.mjs';

const codec = createTextCodec(AIT);
const $ = (sel) => document.querySelector(sel);

function show(id) {
  for (const el of document.querySelectorAll('[data-screen]')) el.hidden = el.id !== id;
}

function showError(text) {
  const el = $('#error');
  el.textContent = text;
  el.hidden = !text;
}

async function main() {
  const { user } = await (await fetch('/api/me')).json();
  if (user) return openChat(user);
  show('login');
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const res = await fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: $('#user').value.trim() }),
    });
    if (!res.ok) return showError((await res.json()).error);
    showError('');
    openChat((await res.json()).user);
  }, { once: false });
}

async function openChat(user) {
  show('chat');
  $('#who').textContent = user;
  const config = await (await fetch('/api/config')).json();

  const client = new Ably.Realtime({
    endpoint: config.endpoint,
    port: config.port,
    tlsPort: config.tlsPort,
    tls: config.tls,
    // The token endpoint authenticates our session cookie and answers an Ably
    // JWT for conversations:<user>; the SDK calls this again to renew it.
    authCallback: async (_params, callback) => {
      try {
        const res = await fetch('/api/ably-token', { credentials: 'same-origin' });
        if (!res.ok) throw new Error(`token endpoint: HTTP ${res.status}`);
        callback(null, await res.text());
      } catch (e) {
        callback(e, null);
      }
    },
  });
  client.connection.on((change) => {
    $('#connection').textContent = change.current;
  });

  const channelName = `${config.namespace}:${user}`;
  const session = AIT.createClientSession({ client, channelName, codec });
  session.on('error', (e) => showError(`${e.code}: ${e.message}`));
  const view = session.view;

  const render = () => {
    const items = view.getMessages().map(({ codecMessageId, message }) => {
      const el = document.createElement('div');
      el.className = `msg ${message.role}`;
      el.dataset.id = codecMessageId;
      if (message.role === 'assistant') {
        const status = view.runOf(codecMessageId)?.status ?? 'active';
        el.dataset.status = status === 'active' ? 'streaming' : status;
      }
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = message.role === 'user' ? user : 'agent';
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = message.text;
      el.append(who, text);
      return el;
    });
    $('#messages').replaceChildren(...items);
    $('#messages').scrollTop = $('#messages').scrollHeight;
    const active = view.runs().some((r) => r.status === 'active');
    $('#cancel').disabled = !active;
  };
  view.on('update', render);
  view.on('run', render); // run lifecycle: started, ended (complete / cancelled / error)

  await session.connect();
  // A reload (or another device) shows the conversation so far, including an
  // answer still streaming: page in the channel's history.
  while (view.hasOlder()) await view.loadOlder();
  render();
  $('#prompt').disabled = false;
  $('#send').disabled = false;
  $('#chat').dataset.ready = 'true';

  $('#prompt-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('#prompt').value.trim();
    if (!text) return;
    $('#prompt').value = '';
    showError('');
    try {
      const run = await view.send(codec.createUserMessage({ id: crypto.randomUUID(), role: 'user', text }));
      // Wake the agent. The POST carries only the invocation; the answer
      // arrives over the session. Its bearer token is our own Ably JWT.
      const res = await fetch('/api/agent', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${client.auth.tokenDetails?.token}` },
        body: JSON.stringify(run.toInvocation().toJSON()),
      });
      if (!res.ok) showError(`agent: HTTP ${res.status} ${(await res.json().catch(() => ({}))).error ?? ''}`);
    } catch (e) {
      showError(`${e.code ?? ''} ${e.message}`);
    }
  });

  $('#cancel').addEventListener('click', async () => {
    const active = view.runs().find((r) => r.status === 'active');
    if (!active) return;
    try {
      await session.cancel(active.runId);
    } catch (e) {
      showError(`cancel refused: ${e.code} ${e.message}`);
    }
  });

  $('#logout').addEventListener('click', async () => {
    await session.close();
    client.close();
    await fetch('/logout', { method: 'POST' });
    location.reload();
  });
}

main().catch((e) => showError(e.message));
