#!/usr/bin/env node
// The benchmark's reference Authorization Server: `oidc-provider` (npm, installed in bench/peers),
// configured minimally on 127.0.0.1 with its default in-memory adapter, in its own process.
//   node bench/oidc-provider.mjs   (prints "listening <port>" once ready)
// One public client (`bench`, token_endpoint_auth_method none, PKCE required), refresh tokens always
// issued and rotated on every use (as Gatehouse does). devInteractions is off: GET /interaction/<uid>
// is answered here, headlessly, by logging in `bench-user` and granting the requested scope.
import { createServer } from 'node:http';
import Provider from './peers/node_modules/oidc-provider/lib/index.js';

// bench/peers.mjs drives the same client: keep these two in step with it.
const CLIENT_ID = 'bench';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';

const http = createServer();
http.keepAliveTimeout = 60_000;
await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
const { port } = http.address();

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: CLIENT_ID,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  }],
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  issueRefreshToken: async () => true,
  rotateRefreshToken: () => true,
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
});
const callback = provider.callback();

/** The interaction, finished without a page: log in `bench-user`, grant what the client asked. */
async function finishInteraction(req, res) {
  const { uid, params, prompt } = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: 'bench-user', clientId: params.client_id });
  grant.addOIDCScope(String(params.scope ?? ''));
  const grantId = await grant.save();
  const location = await provider.interactionResult(req, res, {
    login: { accountId: 'bench-user' },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
  res.writeHead(303, { location, 'x-interaction': `${uid} ${prompt.name}` }).end();
}

http.on('request', (req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
    finishInteraction(req, res).catch((error) => {
      process.stderr.write(`interaction failed: ${error.stack}\n`);
      res.writeHead(500).end(String(error.message));
    });
    return;
  }
  callback(req, res);
});
process.stdout.write(`listening ${port}\n`);
