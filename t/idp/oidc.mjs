// Test OpenID Provider for ngx_http_identity_module, built on oidc-provider 8.
//
//   node t/idp/oidc.mjs --port N [--config FILE.json]
//
// Listens on 127.0.0.1:N with issuer http://127.0.0.1:N and prints
// "READY http://127.0.0.1:N" once listening.  See t/idp/README.md for the
// configuration keys and the /__test/* control endpoints.

import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// Dependencies live in t/node/node_modules, which is not on this script's
// resolution path, so resolve them from there explicitly.
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);
const jose = require('jose');

// ---------------------------------------------------------------- arguments

const args = { port: 0, config: null };
for (let i = 2; i < process.argv.length; i += 1) {
  const a = process.argv[i];
  if (a === '--port') args.port = Number(process.argv[(i += 1)]);
  else if (a === '--config') args.config = process.argv[(i += 1)];
  else fail(`unknown argument ${a}`);
}
if (!Number.isInteger(args.port) || args.port <= 0) fail('--port N is required');

const config = args.config ? JSON.parse(fs.readFileSync(args.config, 'utf8')) : {};
const opt = (k, dflt) => (config[k] === undefined ? dflt : config[k]);
// the demo may listen on another address and name another host
const issuer = opt('issuer', `http://127.0.0.1:${args.port}`);
const listenAddress = opt('listen', '127.0.0.1');

function fail(msg) {
  process.stderr.write(`oidc.mjs: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- accounts

const users = opt('users', [{
  id: 'alice',
  password: 'alice-password',
  email: 'alice@example.test',
  name: 'Alice Example',
  username: 'alice',
  groups: ['staff'],
}]);

function findUser(login) {
  return users.find((u) => u.id === login || u.username === login || u.email === login);
}

// A user's email_verified defaults to true when it has an e-mail; null
// leaves the claim out.  "userinfo": {...} overrides claims in userinfo
// responses only (use === 'userinfo'), e.g. an e-mail the ID token says is
// verified and userinfo does not, or one only userinfo gives.
async function findAccount(ctx, id) {
  const u = users.find((x) => x.id === id);
  if (!u) return undefined;
  const verified = 'email_verified' in u
    ? (u.email_verified ?? undefined) : (u.email !== undefined ? true : undefined);
  return {
    accountId: u.id,
    claims: async (use) => {
      const c = {
        sub: u.id,
        email: u.email,
        email_verified: verified,
        name: u.name,
        preferred_username: u.username,
        groups: u.groups,
      };
      if (use === 'userinfo' && u.userinfo) {
        for (const [k, v] of Object.entries(u.userinfo)) c[k] = v ?? undefined;
      }
      return c;
    },
  };
}

// ---------------------------------------------------------------- clients

const clientDefaults = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};
const shortcut = {};
for (const k of ['redirect_uris', 'post_logout_redirect_uris', 'backchannel_logout_uri',
  'backchannel_logout_session_required']) {
  if (config[k] !== undefined) shortcut[k] = config[k];
}
const clients = opt('clients', [{
  client_id: 'test-client',
  client_secret: 'test-secret',
  redirect_uris: ['http://127.0.0.1/callback'],
  ...shortcut,
  ...opt('client', {}),
}]).map((c) => ({ ...clientDefaults, ...c }));

// ---------------------------------------------------------------- keys

// Signing keys by alg.  Each entry: { kid, alg, priv (KeyObject), jwk (public) }.
// `current` is what id tokens are re-signed with after rotate_keys.
let kidSeq = 0;
function newKey(alg) {
  kidSeq += 1;
  const kid = `test-${alg.toLowerCase()}-${kidSeq}-${crypto.randomBytes(4).toString('hex')}`;
  const { privateKey, publicKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, alg, priv: privateKey, jwk: pub };
}

const algs = opt('es256', false) ? ['RS256', 'ES256'] : ['RS256'];
const initialKeys = algs.map(newKey);
const current = Object.fromEntries(initialKeys.map((k) => [k.alg, k]));
const rotatedKeys = []; // published in addition to the provider's own JWKS
let rotated = false;

// ---------------------------------------------------------------- storage

// Small in-memory adapter (instead of oidc-provider's LRU-bounded dev adapter).
const store = new Map();
const expired = (e) => e && e.exp && e.exp <= Date.now();
function get(key) {
  const e = store.get(key);
  if (!e) return undefined;
  if (expired(e)) { store.delete(key); return undefined; }
  return e.value;
}

class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const exp = expiresIn ? Date.now() + expiresIn * 1000 : 0;
    store.set(this.key(id), { value: payload, exp });
    const idx = (k, v) => store.set(k, { value: v, exp });
    if (payload.grantId) {
      const list = get(`grant:${payload.grantId}`) || [];
      list.push(this.key(id));
      store.set(`grant:${payload.grantId}`, { value: list, exp: 0 });
    }
    if (payload.uid) idx(`uid:${this.model}:${payload.uid}`, id);
    if (payload.userCode) idx(`userCode:${payload.userCode}`, id);
  }

  async find(id) { return get(this.key(id)); }

  async findByUid(uid) {
    const id = get(`uid:${this.model}:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(code) {
    const id = get(`userCode:${code}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const v = get(this.key(id));
    if (v) v.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const k of get(`grant:${grantId}`) || []) store.delete(k);
    store.delete(`grant:${grantId}`);
  }
}

setInterval(() => {
  for (const [k, e] of store) if (expired(e)) store.delete(k);
}, 60000).unref();

// ---------------------------------------------------------------- provider

const html = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
function page(title, body) {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${html(title)}</title></head>\n`
    + `<body>\n<h1>${html(title)}</h1>\n${body}\n</body></html>\n`;
}

const ttl = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  IdToken: 3600,
  RefreshToken: 14 * 86400,
  Interaction: 3600,
  Session: 14 * 86400,
  Grant: 14 * 86400,
  ...opt('ttl', {}),
};

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients,
  findAccount,
  jwks: { keys: initialKeys.map((k) => ({ ...k.priv.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' })) },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    // SameSite=None without Secure is rejected by real browsers on plain http.
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  // oidc-provider's default (conformIdTokenClaims on): a code flow's ID
  // token has sub and protocol claims only; e-mail, name and username come
  // from userinfo.  "id_token_claims": true puts them in the ID token too,
  // for the tests of userinfo auto making no userinfo call.
  conformIdTokenClaims: !opt('id_token_claims', false),
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  ttl,
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // `form` posts to /session/end/confirm; put the "yes" button inside it.
      logoutSource: async (ctx, form) => {
        ctx.type = 'html';
        ctx.body = page('Sign out', form.replace('</form>',
          '<button type="submit" name="logout" value="yes">Yes, sign me out</button></form>'));
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
    userinfo: { enabled: true },
    claimsParameter: { enabled: false },
    revocation: { enabled: true },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([k, v]) => `<p><b>${html(k)}</b>: ${html(v)}</p>`).join('\n'));
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', ctx.path, err));
provider.on('backchannel.success', () => { stats.backchannel_logout_ok += 1; });
provider.on('backchannel.error', (ctx, err, client) => {
  stats.backchannel_logout_error += 1;
  console.error('backchannel logout to', client.backchannelLogoutUri, 'failed:', err.message);
});

// ---------------------------------------------------------------- interactions

function loginPage(uid, params, error) {
  return page('Sign in', `${error ? `<p class="error">${html(error)}</p>\n` : ''}`
    + `<form method="post" action="/interaction/${html(uid)}/login">\n`
    + `<label>Login <input type="text" name="login" value="${html(params.login_hint)}"></label>\n`
    + '<label>Password <input type="password" name="password"></label>\n'
    + '<button type="submit">Sign in</button>\n</form>\n'
    + `<p><a href="/interaction/${html(uid)}/abort">Cancel</a></p>`);
}

function consentPage(uid, interaction) {
  const scopes = interaction.prompt.details.missingOIDCScope || [];
  return page('Authorize', `<p>Client <b>${html(interaction.params.client_id)}</b> asks for: `
    + `${html(scopes.join(' '))}</p>\n`
    + `<form method="post" action="/interaction/${html(uid)}/confirm">\n`
    + '<button type="submit">Continue</button>\n</form>\n'
    + `<p><a href="/interaction/${html(uid)}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) throw new Error('form too large');
  }
  return Object.fromEntries(new URLSearchParams(body));
}

// Grants what the consent prompt says is missing (the usual oidc-provider 8 pattern).
async function grantConsent(interaction) {
  const { prompt: { details }, params, session: { accountId } } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

async function interactionRoute(ctx, uid, action) {
  const { req, res } = ctx;
  let interaction;
  try {
    interaction = await provider.interactionDetails(req, res);
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', `<p>${html(err.message)}</p>`);
    return;
  }
  if (interaction.uid !== uid) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', '<p>interaction mismatch</p>');
    return;
  }
  const finish = async (result) => {
    ctx.respond = false;
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  };
  const prompt = interaction.prompt.name;

  if (action === 'abort' && ctx.method === 'GET') {
    await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
  } else if (action === '' && ctx.method === 'GET') {
    if (prompt === 'consent' && opt('auto_consent', true)) {
      await finish(await grantConsent(interaction));
    } else {
      ctx.type = 'html';
      ctx.body = prompt === 'consent'
        ? consentPage(uid, interaction) : loginPage(uid, interaction.params);
    }
  } else if (action === 'login' && ctx.method === 'POST' && prompt === 'login') {
    const form = await readForm(req);
    const user = findUser(form.login);
    if (!user || user.password !== form.password) {
      ctx.type = 'html';
      ctx.body = loginPage(uid, interaction.params, 'Invalid login');
      return;
    }
    await finish({ login: { accountId: user.id } });
  } else if (action === 'confirm' && ctx.method === 'POST' && prompt === 'consent') {
    await finish(await grantConsent(interaction));
  } else {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', '<p>unexpected interaction request</p>');
  }
}

// ---------------------------------------------------------------- test controls

const state = { token_delay_ms: 0, id_token: 'normal' };
const stats = {
  discovery: 0,
  jwks: 0,
  // requests for keys, discovery or userinfo that carried client credentials
  // (Basic): the client secret is for the token endpoint alone
  basic_elsewhere: 0,
  token: 0,
  userinfo: 0,
  auth: 0,
  end_session: 0,
  backchannel_logout_ok: 0,
  backchannel_logout_error: 0,
};
const statPaths = {
  '/.well-known/openid-configuration': 'discovery',
  '/jwks': 'jwks',
  '/token': 'token',
  '/me': 'userinfo',
  '/auth': 'auth',
  '/session/end': 'end_session',
};
const ID_TOKEN_MODES = new Set(['normal', 'tampered', 'expired', 'wrong_aud', 'wrong_iss',
  'wrong_nonce', 'alg_none', 'wrong_key', 'unknown_kid']);

function testMode(ctx) {
  const q = ctx.query;
  if (q.token_delay_ms !== undefined) {
    const n = Number(q.token_delay_ms);
    if (!Number.isInteger(n) || n < 0) ctx.throw(400, 'bad token_delay_ms');
    state.token_delay_ms = n;
  }
  if (q.id_token !== undefined) {
    if (!ID_TOKEN_MODES.has(q.id_token)) ctx.throw(400, `unknown id_token mode ${q.id_token}`);
    state.id_token = q.id_token;
  }
  if (q.rotate_keys) {
    for (const alg of algs) {
      current[alg] = newKey(alg);
      rotatedKeys.push(current[alg]);
    }
    rotated = true;
  }
  ctx.body = {
    ...state,
    signing_kids: Object.fromEntries(algs.map((a) => [a, current[a].kid])),
    published_kids: [...initialKeys, ...rotatedKeys].map((k) => k.kid),
  };
}

const b64json = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const unb64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

async function sign(header, payload, key) {
  return new jose.CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader(header).sign(key);
}

// Rewrites an id_token issued by oidc-provider according to state.id_token.
async function rewriteIdToken(jwt) {
  const mode = state.id_token;
  if (mode === 'normal' && !rotated) return jwt;
  const [h, p, s] = jwt.split('.');
  const header = unb64json(h);
  const payload = unb64json(p);
  const key = current[header.alg];
  if (!key) return jwt;
  const now = Math.floor(Date.now() / 1000);
  const resign = (hdr = { ...header, kid: key.kid }, k = key.priv) => sign(hdr, payload, k);

  switch (mode) {
    case 'tampered':
      payload.email = 'mallory@evil.test';
      return `${h}.${b64json(payload)}.${s}`;
    case 'expired':
      payload.iat = now - 7200;
      payload.exp = now - 3600;
      return resign();
    case 'wrong_aud':
      payload.aud = 'someone-else';
      return resign();
    case 'wrong_iss':
      payload.iss = 'http://issuer.invalid';
      return resign();
    case 'wrong_nonce':
      payload.nonce = `wrong-${crypto.randomBytes(8).toString('hex')}`;
      return resign();
    case 'alg_none':
      return `${b64json({ ...header, alg: 'none', kid: undefined })}.${p}.`;
    case 'wrong_key':
      return resign({ ...header, kid: key.kid }, newKey(header.alg).priv);
    case 'unknown_kid': {
      const k = newKey(header.alg);
      return resign({ ...header, kid: k.kid }, k.priv);
    }
    default:
      return resign();
  }
}

// A logout token for OpenID Connect Back-Channel Logout 1.0, made the way
// oidc-provider makes one (Client#backchannelLogout), or broken on purpose.
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const LOGOUT_TOKEN_MODES = new Set(['normal', 'wrong_key', 'unknown_kid', 'alg_none',
  'no_events', 'events_not_object', 'event_not_object', 'wrong_event', 'with_nonce',
  'wrong_aud', 'wrong_iss', 'iat_future', 'iat_old', 'no_iat', 'expired', 'no_exp',
  'no_jti', 'no_sub_sid']);

async function testLogoutToken(ctx) {
  const q = ctx.query;
  const mode = q.mode || 'normal';
  if (!LOGOUT_TOKEN_MODES.has(mode)) ctx.throw(400, `unknown logout_token mode ${mode}`);
  if (!q.sub && !q.sid && mode !== 'no_sub_sid') ctx.throw(400, 'sub or sid is required');

  const key = current.RS256;
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'logout+jwt', kid: key.kid };
  const payload = {
    iss: issuer,
    aud: q.client_id || clients[0].client_id,
    iat: now,
    exp: now + 120,
    jti: q.jti || crypto.randomBytes(16).toString('base64url'),
    events: { [BACKCHANNEL_EVENT]: {} },
  };
  if (q.sub && mode !== 'no_sub_sid') payload.sub = q.sub;
  if (q.sid && mode !== 'no_sub_sid') payload.sid = q.sid;
  let priv = key.priv;

  switch (mode) {
    case 'wrong_key': priv = newKey('RS256').priv; break;
    case 'unknown_kid': { const k = newKey('RS256'); header.kid = k.kid; priv = k.priv; break; }
    case 'no_events': delete payload.events; break;
    case 'events_not_object': payload.events = [BACKCHANNEL_EVENT]; break;
    case 'event_not_object': payload.events = { [BACKCHANNEL_EVENT]: 'logout' }; break;
    case 'wrong_event': payload.events = { 'http://schemas.openid.net/event/other': {} }; break;
    case 'with_nonce': payload.nonce = crypto.randomBytes(16).toString('base64url'); break;
    case 'wrong_aud': payload.aud = 'someone-else'; break;
    case 'wrong_iss': payload.iss = 'http://issuer.invalid'; break;
    case 'iat_future': payload.iat = now + 3600; payload.exp = now + 3720; break;
    case 'iat_old': payload.iat = now - 3600; break;
    case 'no_iat': delete payload.iat; break;
    case 'expired': payload.iat = now - 180; payload.exp = now - 120; break;
    case 'no_exp': delete payload.exp; break;
    case 'no_jti': delete payload.jti; break;
    default: break;
  }

  ctx.body = {
    logout_token: mode === 'alg_none'
      ? `${b64json({ alg: 'none', typ: 'logout+jwt' })}.${b64json(payload)}.`
      : await sign(header, payload, priv),
  };
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

provider.use(async (ctx, next) => {
  const stat = statPaths[ctx.path] || (ctx.path.startsWith('/auth/') ? 'auth' : undefined);
  if (stat) stats[stat] += 1;
  if (stat && stat !== 'token' && /^basic /i.test(ctx.get('authorization'))) {
    stats.basic_elsewhere += 1;
  }

  const m = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
  if (m) {
    await interactionRoute(ctx, m[1], m[2] || '');
    return;
  }
  if (ctx.path.startsWith('/__test/') && opt('test_controls', true)) {
    if (ctx.path === '/__test/mode') testMode(ctx);
    else if (ctx.path === '/__test/logout_token') await testLogoutToken(ctx);
    else if (ctx.path === '/__test/stats') {
      ctx.body = { ...stats };
      if (ctx.query.reset) for (const k of Object.keys(stats)) stats[k] = 0;
    } else ctx.throw(404);
    return;
  }

  if (ctx.path === '/token' && state.token_delay_ms) await sleep(state.token_delay_ms);
  await next();

  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await rewriteIdToken(ctx.body.id_token) };
  } else if (ctx.path === '/jwks' && ctx.status === 200 && rotatedKeys.length) {
    ctx.body = { keys: [...ctx.body.keys, ...rotatedKeys.map((k) => k.jwk)] };
  }
});

const server = provider.listen(args.port, listenAddress, () => {
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (err) => fail(err.message));
