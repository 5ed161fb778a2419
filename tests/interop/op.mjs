// An independent, standards-compliant OpenID provider for fedbearer's interop tests.
//
// It is panva's `oidc-provider` (a certified OpenID provider, pinned in package.json), set
// up to look like a Nebius federation on the wire:
//
//   GET  /oauth2/authorize   authorization code + PKCE (S256 only, required), a public native
//                            client whose loopback redirect URI may use any port (RFC 8252
//                            §7.3), and the extra parameter `federation-id`, checked.
//   POST /oauth2/token       authorization_code and refresh_token grants, no client secret.
//   GET  /me                 userinfo: the protected resource the tests call with the token.
//   GET  /.well-known/openid-configuration   discovery (fedbearer's from_issuer reads it)
//   POST /token/revocation   RFC 7009 revocation (fedbearer's logout)
//   POST /device/auth        RFC 8628 device authorization (fedbearer's device-code login);
//   GET  /device             the page where a person enters the user code, then signs in
//
// Scopes: openid (all a Nebius federation asks for), profile and email (their claims, name
// and email, show at /me), offline_access (needs prompt=consent, as OpenID Connect Core §11
// says).
//
// Test-only endpoints (never on a real federation):
//   GET    /__test/authorize-log   JSON list of the authorize requests received, in order
//   GET    /__test/token-log       JSON list of the token requests received (form bodies)
//   DELETE /__test/authorize-log   (or /__test/token-log, /__test/logs) clears the log(s)
//   GET    /__test/config          the effective configuration below
//
// Configuration (argv wins over the environment):
//   --port N      | OP_PORT           port on 127.0.0.1; 0 (default) lets the OS choose
//   --client-id X | OP_CLIENT_ID      default "fedbearer-interop"
//   --federation-id X | OP_FEDERATION_ID   default "interop-federation"; "" disables the check
//   --at-ttl N    | OP_AT_TTL (or AT_TTL)  access token lifetime in seconds, default 3600
//   --refresh 0|1 | OP_REFRESH        issue refresh tokens (default 1), even for scope=openid
//   --clock-tolerance N | OP_CLOCK_TOLERANCE  seconds of leeway on expiry checks, default 0
//                                     (oidc-provider's own default of 15 s would keep an
//                                     expired access token working at /me for 15 s)
//   OP_EXIT_ON_STDIN_EOF=1            exit when stdin closes (the Python wrapper sets it, so
//                                     a killed test run never leaves this process behind)
//
// Once listening it prints ONE JSON line on stdout, e.g.
//   {"port":40123,"issuer":"http://127.0.0.1:40123","client_id":"...","federation_id":"..."}
// and then logs nothing else to stdout. It makes no outgoing network request.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: argv } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    'federation-id': { type: 'string' },
    'at-ttl': { type: 'string' },
    refresh: { type: 'string' },
    'clock-tolerance': { type: 'string' },
  },
  strict: true,
});

const env = process.env;
const pick = (arg, ...names) => {
  if (arg !== undefined) return arg;
  for (const name of names) {
    if (env[name] !== undefined) return env[name];
  }
  return undefined;
};

const config = {
  port: Number.parseInt(pick(argv.port, 'OP_PORT') ?? '0', 10),
  clientId: pick(argv['client-id'], 'OP_CLIENT_ID') ?? 'fedbearer-interop',
  federationId: pick(argv['federation-id'], 'OP_FEDERATION_ID') ?? 'interop-federation',
  accessTokenTTL: Number.parseInt(pick(argv['at-ttl'], 'OP_AT_TTL', 'AT_TTL') ?? '3600', 10),
  clockTolerance: Number.parseInt(pick(argv['clock-tolerance'], 'OP_CLOCK_TOLERANCE') ?? '0', 10),
  refresh: !['0', 'false', 'no', ''].includes(
    (pick(argv.refresh, 'OP_REFRESH') ?? '1').toLowerCase(),
  ),
};

if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) {
  throw new TypeError(`invalid port: ${config.port}`);
}
if (!Number.isInteger(config.clockTolerance) || config.clockTolerance < 0) {
  throw new TypeError(`invalid clock tolerance: ${config.clockTolerance}`);
}
if (!Number.isInteger(config.accessTokenTTL) || config.accessTokenTTL < 1) {
  throw new TypeError(`invalid access token TTL: ${config.accessTokenTTL}`);
}

// Keys made at start-up: no network, no dev keystore warning, nothing on disk.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-rs256', use: 'sig', alg: 'RS256' };

const authorizeLog = [];
const tokenLog = [];

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: config.clientId,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      // A native client's loopback redirect URI matches on any port (RFC 8252 §7.3):
      // oidc-provider strips the port from both sides before comparing.
      redirect_uris: ['http://127.0.0.1', 'http://[::1]'],
      grant_types: [
        'authorization_code',
        'urn:ietf:params:oauth:grant-type:device_code',
        ...(config.refresh ? ['refresh_token'] : []),
      ],
      response_types: ['code'],
    },
  ],
  routes: {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    userinfo: '/me',
    jwks: '/oauth2/jwks',
  },
  jwks: { keys: [signingKey] },
  clockTolerance: config.clockTolerance,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  pkce: {
    // oidc-provider 9 only implements S256 (plain is rejected); require it for every client.
    required: () => true,
  },
  responseTypes: ['code'],
  // Scopes beyond openid, for fedbearer's other-provider tests (FederationAuth.from_issuer):
  // profile and email release claims at /me, so a test can see they were granted.
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  extraParams: {
    async 'federation-id'(ctx, value) {
      if (!config.federationId) return;
      if (value === undefined) {
        throw new errors.InvalidRequest("missing required parameter 'federation-id'");
      }
      if (value !== config.federationId) {
        throw new errors.InvalidRequest('unknown federation-id');
      }
    },
  },
  async issueRefreshToken(_ctx, client) {
    // fedbearer asks for scope=openid only (no offline_access): issue one anyway when enabled.
    return config.refresh && client.grantTypeAllowed('refresh_token');
  },
  ttl: {
    AccessToken: () => config.accessTokenTTL,
    AuthorizationCode: () => 60,
    IdToken: () => 3600,
    RefreshToken: () => 24 * 60 * 60,
    Interaction: () => 10 * 60,
    Session: () => 24 * 60 * 60,
    Grant: () => 24 * 60 * 60,
  },
  features: {
    devInteractions: { enabled: true }, // built-in login (any name) and consent pages
    resourceIndicators: { enabled: true }, // default; no resource → token usable at /me
    dPoP: { enabled: false }, // a Nebius federation issues plain Bearer tokens
    revocation: { enabled: true },
    deviceFlow: { enabled: true }, // RFC 8628, at /device/auth; its pages at /device
    introspection: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
  },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: sub, email: `${sub}@interop.test`, email_verified: false };
      },
    };
  },
  // Nothing here may reach the network: no jwks_uri, no sector_identifier_uri, no CIMD.
  async fetch() {
    throw new Error('network access is disabled in the interop provider');
  },
});

// Silence oidc-provider's dev-mode notices from making noise in test output beyond stderr.
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`op: server_error: ${err?.stack ?? err}\n`);
});

const sendJson = (ctx, status, body) => {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(body);
};

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    const what = ctx.path.slice('/__test/'.length);
    if (ctx.method === 'GET' && what === 'authorize-log') return sendJson(ctx, 200, authorizeLog);
    if (ctx.method === 'GET' && what === 'token-log') return sendJson(ctx, 200, tokenLog);
    if (ctx.method === 'GET' && what === 'config') {
      return sendJson(ctx, 200, {
        issuer,
        port,
        client_id: config.clientId,
        federation_id: config.federationId,
        at_ttl: config.accessTokenTTL,
        refresh: config.refresh,
        clock_tolerance: config.clockTolerance,
      });
    }
    if (ctx.method === 'DELETE' && ['authorize-log', 'logs'].includes(what)) authorizeLog.length = 0;
    if (ctx.method === 'DELETE' && ['token-log', 'logs'].includes(what)) tokenLog.length = 0;
    if (ctx.method === 'DELETE' && ['authorize-log', 'token-log', 'logs'].includes(what)) {
      ctx.status = 204;
      return undefined;
    }
    return sendJson(ctx, 404, { error: 'not_found' });
  }

  const isAuthorize = ctx.path === '/oauth2/authorize';
  const isToken = ctx.path === '/oauth2/token' && ctx.method === 'POST';
  let entry;
  if (isAuthorize) {
    // Exactly what arrived: the decoded parameters (repeated ones as lists) and the raw string.
    entry = {
      method: ctx.method,
      path: ctx.path,
      query: { ...ctx.query },
      raw_query: ctx.querystring,
      user_agent: ctx.get('User-Agent') || null,
      time: Date.now() / 1000,
    };
    authorizeLog.push(entry);
  }
  try {
    await next();
  } finally {
    if (entry) {
      entry.status = ctx.status;
      entry.location = ctx.response.get('Location') || null;
    }
    if (isToken) {
      tokenLog.push({
        form: { ...(ctx.oidc?.body ?? {}) },
        content_type: ctx.get('Content-Type'),
        authorization: ctx.get('Authorization') || null,
        status: ctx.status,
        time: Date.now() / 1000,
      });
    }
  }
  return undefined;
});

server.on('request', provider.callback());

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (env.OP_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`${JSON.stringify({
  port,
  issuer,
  client_id: config.clientId,
  federation_id: config.federationId,
  at_ttl: config.accessTokenTTL,
  refresh: config.refresh,
  clock_tolerance: config.clockTolerance,
})}\n`);
