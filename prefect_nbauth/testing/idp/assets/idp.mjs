// A real OpenID provider (the npm package oidc-provider) for the test suite's
// rotation tests: client-credentials grant with short-lived opaque access
// tokens, introspection (RFC 7662) and revocation (RFC 7009). Loopback only.
//
//   node idp.mjs CONFIG.json      (CONFIG: {ttl, clients: [{client_id, client_secret}]})
//
// Prints one JSON line {"port", "issuer", "version"} on stdout once it listens.
import http from 'node:http';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(import.meta.url);
const { version } = require('oidc-provider/package.json');

// A signing key of our own: without one oidc-provider uses its published development keys.
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'tests' };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [jwk] },
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    ttl: { ClientCredentials: config.ttl },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err && err.message));
  server.on('request', provider.callback());
  process.stdout.write(JSON.stringify({ port, issuer, version }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
