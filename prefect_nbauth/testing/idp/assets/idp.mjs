// A real OpenID provider (the npm package oidc-provider) for the test suite. Loopback only.
//
//   node idp.mjs CONFIG.json
//
// CONFIG (written by prefect_nbauth/testing/idp/_provider.py, mode 0600):
//   ttl               access-token lifetime in seconds, every grant
//   refresh_ttl, id_token_ttl, device_code_ttl   lifetimes in seconds
//   clients           [{client_id, client_secret}]  confidential client-credentials clients
//                     (the gateway introspects with one of them)
//   device_client_id  a public client for the device authorization grant (RFC 8628), or null
//   web_clients       [{client_id, client_secret, redirect_uris}]  confidential
//                     authorization-code clients (client_secret_post, PKCE S256 allowed)
//   users             {name: password}  who may sign in on the sign-in page
//   interval          the `interval` added to device authorization responses, or null (none:
//                     oidc-provider sends none by itself and a client must then use 5 s)
//   slow_down         answer `slow_down` (RFC 8628 3.5) to a device poll that comes sooner
//                     than the interval; each one adds 5 s to it (oidc-provider never does)
//   admin_token       bearer token for /admin/* (revoke a person's sign-ins, read counters)
//
// Prints one JSON line {"port", "issuer", "version"} on stdout once it listens.
//
// What is ours here is glue: a real sign-in page (user name + password against `users`, then
// consent; both can be cancelled), device pages that load nothing from the internet (the
// default ones import fonts from a public CDN), and the two admin endpoints.
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(import.meta.url);
const { version } = require('oidc-provider/package.json');
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const users = config.users || {};

// A signing key of our own: without one oidc-provider uses its published development keys.
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: crypto.randomUUID() };

// ---- pages: plain HTML, nothing from outside 127.0.0.1 -------------------------------------
const STYLE = `<style>body{font-family:sans-serif;max-width:26em;margin:2em auto;padding:0 1em}
  input,button{font-size:1em;padding:.4em;margin:.3em 0}input[type=text],input[type=password]{width:100%;box-sizing:border-box}
  .error{color:#b00020}code{font-size:1.6em;letter-spacing:.1em}</style>`;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">${STYLE}</head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;
}

async function userCodeInputSource(ctx, form, out, err) {
  let msg = '<p>Enter the code shown in your notebook.</p>';
  if (err && (err.userCode || err.name === 'NoCodeError')) {
    msg = '<p class="error" id="error">That code is not valid. Check it and try again.</p>';
  } else if (err && err.name === 'AbortedError') {
    msg = '<p class="error" id="error">The sign-in was cancelled.</p>';
  } else if (err) {
    msg = `<p class="error" id="error">${esc(err.name === 'ExpiredError' ? 'That code has expired.' : 'The sign-in failed.')}</p>`;
  }
  ctx.body = page('Device sign-in', `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
}

async function userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
  const name = esc(client.clientName || client.clientId);
  ctx.body = page('Confirm device', `<p><strong>${name}</strong> asks to sign in as you.
The notebook should show this code:</p><p><code id="user-code">${esc(userCode)}</code></p>${form}
<button type="submit" form="op.deviceConfirmForm" id="confirm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort" id="abort">Cancel</button>`);
}

async function successSource(ctx) {
  ctx.body = page('Signed in', '<p id="done">You are signed in. You can close this page and go back to your notebook.</p>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Sign-in error', Object.entries(out).map(([k, v]) => `<p><b>${esc(k)}</b>: ${esc(v)}</p>`).join(''));
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p>You are signed out.</p>');
}

function loginPage(uid, client, error) {
  return page('Sign in', `<p>Sign in to continue to <strong>${esc(client)}</strong>.</p>
${error ? `<p class="error" id="error">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label>User name <input type="text" name="login" id="login" autofocus></label>
<label>Password <input type="password" name="password" id="password"></label>
<button type="submit" id="sign-in">Sign in</button></form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit" id="cancel">Cancel</button></form>`);
}

function consentPage(uid, client, account, scopes) {
  return page('Allow access?', `<p>Signed in as <strong id="account">${esc(account)}</strong>.</p>
<p><strong>${esc(client)}</strong> asks for: <span id="scopes">${esc(scopes.join(' '))}</span></p>
<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit" id="allow">Allow</button></form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit" id="deny">Deny</button></form>`);
}

function account(id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, preferred_username: id, name: id[0].toUpperCase() + id.slice(1),
               email: `${id}@example.test`, email_verified: true };
    },
  };
}

function passwordMatches(name, password) {
  if (!Object.hasOwn(users, name)) return false;
  const a = crypto.createHash('sha256').update(String(users[name])).digest();
  const b = crypto.createHash('sha256').update(String(password)).digest();
  return crypto.timingSafeEqual(a, b);
}

// ---- what the admin endpoints and counters see -------------------------------------------
const grantsByAccount = new Map();  // accountId -> Set(grantId)
const sessionsByAccount = new Map();  // accountId -> Set(session id)
const counters = { device_authorizations: 0, device_polls: 0, slow_downs: 0, tokens: {},
                   refresh_token_rotations: 0, replays: 0, revocations: 0, introspections: 0, admin_revocations: 0,
                   errors: {}, sign_ins: 0, failed_sign_ins: 0 };
const remember = (map, key, value) => { if (key) { if (!map.has(key)) map.set(key, new Set()); map.get(key).add(value); } };
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

const clients = [
  ...(config.clients || []).map((c) => ({
    client_id: c.client_id, client_secret: c.client_secret, grant_types: ['client_credentials'],
    redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic',
  })),
  ...(config.device_client_id ? [{
    client_id: config.device_client_id, client_name: 'Prefect notebook', application_type: 'native',
    grant_types: [DEVICE_GRANT, 'refresh_token'], redirect_uris: [], response_types: [],
    token_endpoint_auth_method: 'none',
  }] : []),
  ...(config.web_clients || []).map((c) => ({
    client_id: c.client_id, client_secret: c.client_secret, client_name: c.client_name || c.client_id,
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    redirect_uris: c.redirect_uris, token_endpoint_auth_method: 'client_secret_post',
  })),
];

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [jwk] },
    clients,
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'] },
    // The profile claims go into the id_token itself, so a client knows who signed in
    // without a userinfo call (with opaque access tokens they would be userinfo-only).
    conformIdTokenClaims: false,
    findAccount: (ctx, id) => (Object.hasOwn(users, id) ? account(id) : undefined),
    // Every refresh returns a new refresh token and consumes the old one, for every client
    // (the default rotates only public clients'); a replayed one revokes the grant.
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      deviceFlow: { enabled: true, userCodeInputSource, userCodeConfirmSource, successSource },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    renderError,
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: config.ttl, ClientCredentials: config.ttl,
      RefreshToken: config.refresh_ttl, IdToken: config.id_token_ttl,
      DeviceCode: config.device_code_ttl, Interaction: 600, Session: 3600, Grant: config.refresh_ttl,
      AuthorizationCode: 60,
    },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  });

  provider.on('server_error', (ctx, err) => console.error('server_error', err && err.message));
  provider.on('grant.saved', (grant) => remember(grantsByAccount, grant.accountId, grant.jti));
  provider.on('session.saved', (session) => remember(sessionsByAccount, session.accountId, session.jti));
  provider.on('grant.success', (ctx) => bump(counters.tokens, ctx.oidc.params.grant_type));
  provider.on('refresh_token.consumed', () => { counters.refresh_token_rotations += 1; });
  provider.on('grant.error', (ctx, err) => {
    bump(counters.errors, err.error);
    if (err.error_detail === 'refresh token already used') counters.replays += 1;
  });
  provider.on('device_authorization.success', (ctx, body) => {
    counters.device_authorizations += 1;
    if (config.interval !== null && config.interval !== undefined) body.interval = config.interval;
  });

  const pollTimes = new Map();  // device_code -> {last, interval}

  provider.use(async (ctx, next) => {
    const path = ctx.path;
    if (path.startsWith('/admin/')) return admin(ctx);
    if (path === '/token/revocation' || path === '/token/introspection') {
      await next();
      if (ctx.status === 200) bump(counters, path === '/token/revocation' ? 'revocations' : 'introspections');
      return undefined;
    }
    if (ctx.method === 'POST' && path === '/token' && ctx.is('application/x-www-form-urlencoded')) {
      // Read the form ourselves to see device polls; oidc-provider then uses req.body.
      const raw = await readBody(ctx.req);
      ctx.req.body = raw;
      const form = new URLSearchParams(raw);
      if (form.get('grant_type') === DEVICE_GRANT) {
        counters.device_polls += 1;
        if (config.slow_down && tooSoon(form.get('device_code') || '')) {
          counters.slow_downs += 1;
          ctx.status = 400;
          ctx.set('Cache-Control', 'no-store');
          ctx.body = { error: 'slow_down', error_description: 'polling too fast; add 5 seconds to the interval' };
          return undefined;
        }
      }
      return next();
    }
    const match = path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
    if (!match) return next();
    ctx.set('Cache-Control', 'no-store');
    const [, , action] = match;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const client = await provider.Client.find(details.params.client_id);
    const clientName = client ? (client.clientName || client.clientId) : details.params.client_id;
    if (ctx.method === 'GET' && !action) {
      ctx.type = 'html';
      ctx.body = details.prompt.name === 'login'
        ? loginPage(details.uid, clientName)
        : consentPage(details.uid, clientName, details.session.accountId,
          [...(details.prompt.details.missingOIDCScope || [])]);
      return undefined;
    }
    if (ctx.method !== 'POST' || !action) return next();
    const form = new URLSearchParams(await readBody(ctx.req));
    let result;
    if (action === 'abort') {
      result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    } else if (action === 'login') {
      if (details.prompt.name !== 'login') return next();
      const name = (form.get('login') || '').trim();
      if (!passwordMatches(name, form.get('password') || '')) {
        counters.failed_sign_ins += 1;
        ctx.type = 'html';
        ctx.status = 401;
        ctx.body = loginPage(details.uid, clientName, 'Wrong user name or password.');
        return undefined;
      }
      counters.sign_ins += 1;
      result = { login: { accountId: name } };
    } else {
      if (details.prompt.name !== 'consent') return next();
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      result = { consent: details.grantId ? {} : { grantId } };
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: action !== 'login' });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  });

  function tooSoon(deviceCode) {
    const now = Date.now() / 1000;
    const seen = pollTimes.get(deviceCode);
    const required = seen ? seen.interval : (config.interval ?? 5);
    pollTimes.set(deviceCode, { last: now, interval: required });
    if (seen && now - seen.last < required - 0.05) {
      seen.interval = required + 5;  // RFC 8628 3.5: the client adds 5 s; so do we
      seen.last = now;
      pollTimes.set(deviceCode, seen);
      return true;
    }
    return false;
  }

  async function admin(ctx) {
    const expected = `Bearer ${config.admin_token}`;
    const given = ctx.get('authorization') || '';
    const ok = given.length === expected.length
      && crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected));
    if (!ok) { ctx.status = 401; ctx.body = { error: 'unauthorized' }; return; }
    ctx.set('Cache-Control', 'no-store');
    if (ctx.method === 'GET' && ctx.path === '/admin/stats') {
      ctx.body = counters;
      return;
    }
    const revoke = ctx.path.match(/^\/admin\/accounts\/([^/]+)\/revoke$/);
    if (ctx.method === 'POST' && revoke) {
      // What an administrator's "sign this person out everywhere" does: every grant of the
      // account is destroyed with all its tokens (refresh tokens refused with invalid_grant,
      // access tokens introspect inactive), and their browser sessions end (the next sign-in
      // asks for the password again).
      const id = decodeURIComponent(revoke[1]);
      const grants = [...(grantsByAccount.get(id) || [])];
      for (const grantId of grants) {
        await Promise.all([provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode,
          provider.DeviceCode].map((model) => model.revokeByGrantId(grantId)));
        await provider.Grant.adapter.destroy(grantId);
      }
      for (const sessionId of sessionsByAccount.get(id) || []) {
        await provider.Session.adapter.destroy(sessionId);
      }
      grantsByAccount.delete(id);
      sessionsByAccount.delete(id);
      counters.admin_revocations += 1;
      ctx.body = { account: id, grants: grants.length };
      return;
    }
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
  }

  server.on('request', provider.callback());
  process.stdout.write(JSON.stringify({ port, issuer, version }) + '\n');
});

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

process.on('SIGTERM', () => server.close(() => process.exit(0)));
