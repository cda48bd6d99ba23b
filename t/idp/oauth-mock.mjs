// Loopback mock of eight OAuth 2.0 providers (amazon, facebook, github,
// gitlab, google, linkedin, microsoft, twitch) for ngx_http_identity_module's
// `type oauth; preset NAME;` tests.  Node standard library only.
//
//   node t/idp/oauth-mock.mjs PORT [CONFIG.json]
//
// Listens on 127.0.0.1:PORT and prints "ready" once listening.  Each provider's
// real paths are mounted under /NAME; the /__test/* endpoints drive it.  See
// t/idp/oauth-mock.md for the shapes, the rules it enforces and the controls.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

function die(msg) { process.stderr.write(`oauth-mock: ${msg}\n`); process.exit(2); }
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) die('usage: node oauth-mock.mjs PORT [CONFIG.json]');
let fileConf = {};
try { if (process.argv[3]) fileConf = JSON.parse(fs.readFileSync(process.argv[3], 'utf8')); } catch (e) { die(`${process.argv[3]}: ${e.message}`); }

// ---------------------------------------------------------------- helpers

const b64u = (b) => Buffer.from(b).toString('base64url');
const rand = (n) => b64u(crypto.randomBytes(n));
const hex = (n) => crypto.randomBytes(n).toString('hex');
function alnum(n, chars = 'abcdefghijklmnopqrstuvwxyz0123456789') {
  let s = '';
  for (const b of crypto.randomBytes(n)) s += chars[b % chars.length];
  return s;
}
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const now = () => Date.now();
const clone = (o) => JSON.parse(JSON.stringify(o));
const traceId = () => crypto.randomUUID();
const fakeJwt = (payload) => [b64u(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid: 'oauth-mock' })),
  b64u(JSON.stringify(payload)), rand(64)].join('.');

// ---------------------------------------------------------------- default users

const DEFAULT_USERS = {
  amazon: { user_id: 'amzn1.account.AEXAMPLE7QZKJ2LWRJ3XT5VNAB4Q', name: 'Amazon Example',
    email: 'amazon.user@example.com', postal_code: '98109' },
  facebook: { id: '10158234567890123', name: 'Facebook Example', email: 'facebook.user@example.com' },
  github: {
    login: 'octocat', id: 583231, node_id: 'MDQ6VXNlcjU4MzIzMQ==',
    avatar_url: 'https://avatars.githubusercontent.com/u/583231?v=4', gravatar_id: '',
    url: 'https://api.github.com/users/octocat', html_url: 'https://github.com/octocat',
    type: 'User', site_admin: false, name: 'The Octocat', company: '@github',
    blog: 'https://github.blog', location: 'San Francisco', email: null, hireable: null,
    bio: null, twitter_username: null, public_repos: 8, public_gists: 8, followers: 9000,
    following: 9, created_at: '2011-01-25T18:44:36Z', updated_at: '2024-01-22T12:00:00Z',
    private_gists: 0, total_private_repos: 0, owned_private_repos: 0, disk_usage: 0,
    collaborators: 0, two_factor_authentication: true,
    plan: { name: 'free', space: 976562499, collaborators: 0, private_repos: 10000 },
  },
  gitlab: {
    id: 1234567, username: 'gitlab-user', name: 'GitLab Example', state: 'active', locked: false,
    avatar_url: 'https://gitlab.example.com/uploads/-/system/user/avatar/1234567/avatar.png',
    web_url: 'https://gitlab.example.com/gitlab-user', created_at: '2019-03-04T10:11:12.000Z',
    bio: '', location: '', public_email: null, skype: '', linkedin: '', twitter: '',
    website_url: '', organization: '', job_title: '', pronouns: null, bot: false,
    last_sign_in_at: '2024-01-20T09:00:00.000Z', confirmed_at: '2019-03-04T10:12:00.000Z',
    last_activity_on: '2024-01-22', email: 'gitlab.user@example.com', theme_id: 1,
    color_scheme_id: 1, projects_limit: 100000, current_sign_in_at: '2024-01-22T08:00:00.000Z',
    identities: [], can_create_group: true, can_create_project: true,
    two_factor_enabled: false, external: false, private_profile: false,
    commit_email: 'gitlab.user@example.com',
  },
  google: { sub: '110169484474386276334', name: 'Google Example', given_name: 'Google',
    family_name: 'Example', picture: 'https://lh3.googleusercontent.com/a/ACg8ocExample=s96-c',
    email: 'google.user@example.com', email_verified: true, locale: 'en' },
  linkedin: { sub: '782bbtaQ', name: 'LinkedIn Example', given_name: 'LinkedIn', family_name: 'Example',
    picture: 'https://media.licdn.com/dms/image/C5603AQExample/profile-displayphoto-shrink_100_100/0/',
    locale: { country: 'US', language: 'en' }, email: 'linkedin.user@example.com', email_verified: true },
  microsoft: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#users/$entity',
    businessPhones: [], displayName: 'Adele Vance', givenName: 'Adele', jobTitle: null,
    mail: 'AdeleV@contoso.example', mobilePhone: null, officeLocation: null,
    preferredLanguage: 'en-US', surname: 'Vance', userPrincipalName: 'AdeleV@contoso.example',
    id: '87d349ed-44d7-43e1-9a83-5f2406dee5bd' },
  twitch: { id: '141981764', login: 'twitchdev', display_name: 'TwitchDev', type: '',
    broadcaster_type: 'partner', description: 'Supporting third-party developers building Twitch integrations.',
    profile_image_url: 'https://static-cdn.jtvnw.net/jtv_user_pictures/example-profile_image-300x300.png',
    offline_image_url: 'https://static-cdn.jtvnw.net/jtv_user_pictures/example-channel_offline_image-1920x1080.png',
    view_count: 5980557, email: 'twitch.user@example.com', created_at: '2016-12-14T20:32:28Z' },
};
const DEFAULT_EMAILS = [
  { email: 'octocat@example.com', primary: true, verified: true, visibility: 'private' },
  { email: '583231+octocat@users.noreply.github.com', primary: false, verified: true, visibility: null },
];

// ---------------------------------------------------------------- providers

const has = (scopes, ...any) => any.some((s) => scopes.includes(s));
const pick = (u, keys) => Object.fromEntries(keys.filter((k) => k in u).map((k) => [k, u[k]]));
const GOOGLE_SCOPE = { email: 'https://www.googleapis.com/auth/userinfo.email',
  profile: 'https://www.googleapis.com/auth/userinfo.profile' };
const gh = (slug) => `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${slug}`;
const OIDC_PROFILE = ['name', 'given_name', 'family_name', 'picture', 'locale'];
function oidcClaims(u, scopes, oidcScopeRequired) {
  if (oidcScopeRequired && !scopes.includes('openid')) return null;
  const keys = ['sub', 'hd'];
  if (has(scopes, 'profile', GOOGLE_SCOPE.profile)) keys.push(...OIDC_PROFILE);
  if (has(scopes, 'email', GOOGLE_SCOPE.email)) keys.push('email', 'email_verified');
  return pick(u, keys);
}
// Microsoft: the user's tenant is its "_tid" (not shown by Graph), else
// this one; its oid is its Graph id.
const MS_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
function idToken(p, t, u) {
  if (!t.scopes.includes('openid')) return {};
  const tid = u._tid || MS_TENANT;
  const iss = { google: 'https://accounts.google.com', linkedin: 'https://www.linkedin.com',
    microsoft: `https://login.microsoftonline.com/${tid}/v2.0`,
    gitlab: 'https://gitlab.example.com' }[p.name];
  const iat = Math.floor(now() / 1000);
  const ms = p.name === 'microsoft' ? { tid, oid: String(u.id) } : {};
  return { id_token: fakeJwt({ iss, aud: t.client_id, sub: String(u[p.idKey]), ...ms, iat, exp: iat + 3600 }) };
}

// Each provider: route regexps (below /NAME), token formats, what it issues, its error shapes.
const PROVIDERS = {
  amazon: {
    routes: { authorize: /^\/ap\/oa$/, token: /^\/auth\/o2\/token$/, api: /^\/user\/profile$/ },
    idKey: 'user_id', requireScope: true, tokenType: 'bearer',
    access: () => `Atza|${rand(270)}`, refresh: () => `Atzr|${rand(270)}`,
    issueRefresh: () => true, echoRefresh: true, rotate: false, queryToken: true,
    view(u, s) {
      if (has(s, 'profile')) return pick(u, ['user_id', 'name', 'email', ...(s.includes('postal_code') ? ['postal_code'] : [])]);
      if (has(s, 'profile:user_id', 'postal_code')) return pick(u, ['user_id', ...(s.includes('postal_code') ? ['postal_code'] : [])]);
      return null;
    },
    apiError: (kind) => (kind === 'scope'
      ? [403, { error: 'insufficient_scope', error_description: 'The access token provided does not allow access to the requested resource.' }]
      : [401, { error: 'invalid_token', error_description: 'The access token provided is expired, revoked, malformed, or invalid for other reasons.' }]),
  },
  facebook: {
    routes: { authorize: /^\/v\d+\.\d+\/dialog\/oauth$/, token: /^\/(v\d+\.\d+\/)?oauth\/access_token$/, api: /^\/(v\d+\.\d+\/)?me$/ },
    idKey: 'id', defaultScope: 'public_profile', scopeSplit: /[\s,]+/, tokenType: 'bearer', getToken: true, impliedGrant: true,
    access: () => `EAAB${alnum(180, ALNUM)}`, issueRefresh: () => false, queryToken: true,
    fragment: '#_=_',
    view(u, s, q) {
      const fields = (q.fields || 'id,name').split(',').map((f) => f.trim()).filter((f) => f !== 'email' || s.includes('email'));
      return pick(u, fields);
    },
    tokenBody: (t) => ({ access_token: t.access_token, token_type: 'bearer', expires_in: t.expires_in }),
    tokenError(err, desc, sub) {
      return [400, { error: { message: desc, type: 'OAuthException', code: err === 'invalid_client' ? 1 : 100,
        ...(sub === 'used' ? { error_subcode: 36009 } : {}), fbtrace_id: rand(8) } }];
    },
    apiError(kind) {
      if (kind === 'missing') return [400, { error: { message: 'An active access token must be used to query information about the current user.', type: 'OAuthException', code: 2500, fbtrace_id: rand(8) } }];
      const [message, sub] = { expired: ['Error validating access token: Session has expired.', 463],
        revoked: ['Error validating access token: The user has not authorized application.', 458] }[kind]
        || ['Invalid OAuth access token - Cannot parse access token', undefined];
      return [400, { error: { message, type: 'OAuthException', code: 190, ...(sub ? { error_subcode: sub } : {}), fbtrace_id: rand(8) } },
        { 'www-authenticate': `OAuth "Facebook Platform" "invalid_token" "${message}"` }];
    },
  },
  github: {
    routes: { authorize: /^\/login\/oauth\/authorize$/, token: /^\/login\/oauth\/access_token$/, api: /^\/user(\/emails)?$/ },
    idKey: 'id', optionalResponseType: true, optionalRedirectAtToken: true, impliedGrant: true, scopeSplit: /[\s,]+/,
    tokenType: 'bearer', requireUA: true, tokenScheme: /^(bearer|token)$/i,
    access: (c) => (c.expiring_tokens ? `ghu_${alnum(36, ALNUM)}` : `gho_${alnum(36, ALNUM)}`),
    refresh: () => `ghr_${alnum(76, ALNUM)}`, issueRefresh: (c) => !!c.expiring_tokens, rotate: true,
    tokenBody(t, c) {
      const b = { access_token: t.access_token };
      if (c.expiring_tokens) Object.assign(b, { expires_in: t.expires_in, refresh_token: t.refresh_token, refresh_token_expires_in: 15897600 });
      return Object.assign(b, { scope: t.scopes.join(','), token_type: 'bearer' });
    },
    tokenError(err, desc, sub, c) {
      const error = err === 'invalid_client' ? 'incorrect_client_credentials'
        : err !== 'invalid_grant' ? err : sub === 'redirect_uri' ? 'redirect_uri_mismatch'
          : sub === 'refresh' ? 'bad_refresh_token' : 'bad_verification_code';
      return [c.error_status ?? 200, { error, error_description: desc, error_uri: gh(error.replace(/_/g, '-')) }];
    },
    apiError(kind) {
      if (kind === 'scope') return [404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user', status: '404' }];
      return [401, { message: kind === 'missing' ? 'Requires authentication' : 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' }];
    },
  },
  gitlab: {
    routes: { authorize: /^\/oauth\/authorize$/, token: /^\/oauth\/token$/, api: /^\/api\/v4\/user$/ },
    idKey: 'id', defaultScope: 'api', tokenType: 'bearer',
    access: () => hex(32), refresh: () => hex(32), issueRefresh: () => true, rotate: true,
    view: (u, s) => (has(s, 'read_user', 'api', 'read_api', 'sudo') ? u : null),
    tokenExtra: (t) => ({ created_at: Math.floor(t.issued / 1000) }),
    apiError(kind) {
      if (kind === 'scope') return [403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: 'api read_user read_api' }];
      if (kind === 'expired') return [401, { error: 'invalid_token', error_description: 'Token is expired. You can either do re-authorization or token refresh.' }];
      if (kind === 'revoked') return [401, { error: 'invalid_token', error_description: 'Token was revoked. You have to re-authorize from the user.' }];
      return [401, { message: '401 Unauthorized' }];
    },
  },
  google: {
    routes: { authorize: /^\/o\/oauth2\/v2\/auth$/, token: /^\/token$/, api: /^\/v1\/userinfo$/ },
    idKey: 'sub', requireScope: true, tokenType: 'Bearer',
    access: () => `ya29.${rand(150)}`, refresh: () => `1//0${rand(75)}`,
    issueRefresh: (c, a) => a.access_type === 'offline', echoRefresh: false, rotate: false,
    grantScopes: (s) => s.map((x) => GOOGLE_SCOPE[x] || x),
    redirectExtra: (a) => ({ scope: a.scopes.map((x) => GOOGLE_SCOPE[x] || x).join(' '), authuser: '0', prompt: 'consent' }),
    view: (u, s) => oidcClaims(u, s, false),
    apiError: (kind) => [401, { error: 'invalid_request', error_description: 'Invalid Credentials' },
      { 'www-authenticate': `Bearer realm="https://accounts.google.com/", error="invalid_token"` }],
  },
  linkedin: {
    routes: { authorize: /^\/oauth\/v2\/authorization$/, token: /^\/oauth\/v2\/accessToken$/, api: /^\/v2\/userinfo$/ },
    idKey: 'sub', requireScope: true, tokenType: 'Bearer',
    access: () => `AQ${rand(260)}`, refresh: () => `AQ${rand(260)}`,
    issueRefresh: () => false, echoRefresh: true, rotate: false,
    scopeOut: (s) => s.join(','),
    tokenExtra: (t) => (t.refresh_token ? { refresh_token_expires_in: 31536000 } : {}),
    view: (u, s) => oidcClaims(u, s, true),
    apiError(kind) {
      if (kind === 'scope') return [403, { serviceErrorCode: 100, message: 'Not enough permissions to access: userinfo.GET.NO_VERSION', status: 403 }];
      const [code, message] = { expired: [65601, 'The token used in the request has expired'],
        revoked: [65602, 'The token used in the request has been revoked by the user'],
        missing: [65604, 'Empty oauth2 access token'] }[kind] || [65600, 'Invalid access token'];
      return [401, { serviceErrorCode: code, code: 'INVALID_ACCESS_TOKEN', message, status: 401 }];
    },
  },
  microsoft: {
    routes: { authorize: /^\/[^/]+\/oauth2\/v2\.0\/authorize$/, token: /^\/[^/]+\/oauth2\/v2\.0\/token$/, api: /^\/v1\.0\/me$/ },
    idKey: 'id', requireScope: true, tokenType: 'Bearer',
    access: () => fakeJwt({ aud: '00000003-0000-0000-c000-000000000000', jti: rand(16) }),
    refresh: () => `1.A${rand(300)}`, issueRefresh: (c, a) => a.scopes.includes('offline_access'), rotate: true,
    grantScopes(s) {
      const g = s.filter((x) => x !== 'offline_access');
      return g.every((x) => ['openid', 'profile', 'email'].includes(x)) ? [...g, 'User.Read'] : g;
    },
    tokenExtra: (t) => ({ ext_expires_in: t.expires_in }),
    view: (u) => Object.fromEntries(Object.entries(u).filter(([k]) => !k.startsWith('_'))),
    tokenError(err, desc, sub) {
      const code = { invalid_client: 7000215, unsupported_grant_type: 70003, invalid_request: 900144 }[err]
        || { used: 54005, redirect_uri: 500117, verifier: 501481, refresh: 70008 }[sub] || 70000;
      const ts = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
      const [tr, co] = [traceId(), traceId()];
      return [err === 'invalid_client' ? 401 : 400, { error: err,
        error_description: `AADSTS${code}: ${desc} Trace ID: ${tr} Correlation ID: ${co} Timestamp: ${ts}`,
        error_codes: [code], timestamp: ts, trace_id: tr, correlation_id: co,
        error_uri: `https://login.microsoftonline.com/error?code=${code}` }];
    },
    apiError(kind) {
      const message = { missing: 'Access token is empty.', expired: 'Lifetime validation failed, the token is expired.',
        revoked: 'Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp' }[kind]
        || 'IDX14100: JWT is not well formed, there are no dots (.).';
      return [401, { error: { code: 'InvalidAuthenticationToken', message,
        innerError: { date: new Date().toISOString().replace(/\.\d+Z$/, ''), 'request-id': traceId(), 'client-request-id': traceId() } } }];
    },
  },
  twitch: {
    routes: { authorize: /^\/oauth2\/authorize$/, token: /^\/oauth2\/token$/, api: /^\/helix\/users$/ },
    idKey: 'id', tokenType: 'bearer', clientIdHeader: true,
    access: () => alnum(30), refresh: () => alnum(50), issueRefresh: () => true, echoRefresh: true, rotate: false,
    scopeOut: (s) => s,
    redirectExtra: (a) => ({ scope: a.scopes.join(' ') }),
    view(u, s, q) {
      if ((q.id && q.id !== u.id) || (q.login && q.login !== u.login)) return { data: [] };
      const v = { ...u };
      if (!s.includes('user:read:email')) delete v.email;
      return { data: [v] };
    },
    tokenError(err, desc, sub) {
      if (err === 'invalid_client') return [403, { status: 403, message: 'invalid client secret' }];
      const message = err !== 'invalid_grant' ? desc : sub === 'refresh' ? 'Invalid refresh token' : 'Invalid authorization code';
      return [400, { status: 400, message }];
    },
    apiError(kind) {
      const message = kind === 'client' ? 'Client ID and OAuth token do not match'
        : kind === 'missing' ? 'OAuth token is missing' : 'Invalid OAuth token';
      return [401, { error: 'Unauthorized', status: 401, message }];
    },
  },
};
for (const [name, p] of Object.entries(PROVIDERS)) p.name = name;

// ---------------------------------------------------------------- state

const CONFIG_KEYS = ['expires_in', 'rotate_refresh', 'deny', 'userinfo_status', 'refresh',
  'expiring_tokens', 'auth_methods', 'error_status'];
let clients; let state;
function addClient(c) {
  if (!c || typeof c.client_id !== 'string' || typeof c.client_secret !== 'string') throw new Error('client_id and client_secret are required');
  clients.set(c.client_id, { redirect_uris: null, providers: null, ...c });
}
function reset() {
  clients = new Map();
  addClient({ client_id: 'test-client', client_secret: 'test-secret' });
  for (const c of fileConf.clients || []) addClient(c);
  state = { codes: new Map(), access: new Map(), refresh: new Map(), revoked: new Set(), requests: [], p: {} };
  for (const [name, p] of Object.entries(PROVIDERS)) {
    const ps = state.p[name] = { users: new Map(), current: null,
      config: { expires_in: 3600, rotate_refresh: p.rotate ?? false, deny: false, userinfo_status: null,
        refresh: null, expiring_tokens: false, auth_methods: ['basic', 'body'], error_status: null } };
    const fc = (fileConf.providers || {})[name] || {};
    setUser(name, fc.user || DEFAULT_USERS[name], fc.emails || (name === 'github' ? DEFAULT_EMAILS : undefined));
    setConfig(name, fc);
    ps.defaultUserId = ps.current;
  }
}
function setUser(name, user, emails) {
  const p = PROVIDERS[name]; const ps = state.p[name];
  if (name === 'twitch' && Array.isArray(user?.data)) [user] = user.data;
  if (!user || typeof user !== 'object' || user[p.idKey] === undefined) throw new Error(`user needs "${p.idKey}"`);
  const id = String(user[p.idKey]);
  const old = ps.users.get(id);
  ps.users.set(id, { user: clone(user), emails: emails ? clone(emails) : old?.emails || [] });
  ps.current = id;
}
function setConfig(name, c) {
  for (const k of CONFIG_KEYS) if (c[k] !== undefined) state.p[name].config[k] = c[k];
  return state.p[name].config;
}
function revoke(name) {
  for (const [k, v] of state.access) if (v.provider === name) { state.access.delete(k); state.revoked.add(k); }
  for (const [k, v] of state.refresh) if (v.provider === name) state.refresh.delete(k);
}
reset();

// ---------------------------------------------------------------- HTTP plumbing

function send(res, status, body, headers = {}) {
  const isJson = typeof body !== 'string';
  const text = isJson ? JSON.stringify(body) : body;
  res.writeHead(status, { 'content-type': isJson ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };
const formEncode = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => [k, String(v)])).toString();
const qobj = (sp) => { const o = {}; for (const [k, v] of sp) o[k] = k in o ? [].concat(o[k], v) : v; return o; };
function redirect(res, uri, params, fragment = '') {
  const u = new URL(uri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.append(k, v);
  res.writeHead(302, { location: u.toString() + fragment, 'content-length': 0 });
  res.end();
}
const loopback = (uri) => { try { const u = new URL(uri); return /^https?:$/.test(u.protocol) && ['127.0.0.1', 'localhost'].includes(u.hostname) && !u.hash; } catch { return false; } };

// ---------------------------------------------------------------- authorize

function authorize(p, req, res, q) {
  const client = clients.get(q.client_id);
  if (!client || (client.providers && !client.providers.includes(p.name))) return send(res, 400, `invalid_client: unknown client_id\n`);
  const ru = q.redirect_uri;
  if (typeof ru !== 'string' || !loopback(ru) || (client.redirect_uris && !client.redirect_uris.includes(ru))) return send(res, 400, 'redirect_uri_mismatch: the redirect_uri is not registered for this client\n');
  const fail = (error, desc) => redirect(res, ru, { error, error_description: desc, state: q.state }, p.fragment);
  if (q.response_type !== 'code' && !(p.optionalResponseType && q.response_type === undefined)) return fail('unsupported_response_type', 'response_type must be code');
  if (p.requireScope && !q.scope) return fail('invalid_request', 'Missing required parameter: scope');
  const method = q.code_challenge_method ?? (q.code_challenge ? 'plain' : undefined);
  if (method !== undefined && (!q.code_challenge || !['S256', 'plain'].includes(method))) return fail('invalid_request', 'invalid code_challenge or code_challenge_method');
  const cfg = state.p[p.name].config;
  if (cfg.deny) return fail('access_denied', 'The user has denied your application access.');
  const scopes = String(q.scope ?? p.defaultScope ?? '').split(p.scopeSplit || /\s+/).filter(Boolean);
  const code = p.name === 'google' ? `4/0${rand(60)}` : p.name === 'twitch' ? alnum(30) : rand(24);
  const entry = { provider: p.name, client_id: q.client_id, redirect_uri: ru, scopes, challenge: q.code_challenge,
    method, access_type: q.access_type, userId: state.p[p.name].current, exp: now() + 60000, params: q };
  state.codes.set(code, entry);
  redirect(res, ru, { code, ...(p.redirectExtra ? p.redirectExtra(entry) : {}), state: q.state }, p.fragment);
}

// ---------------------------------------------------------------- token

function clientAuth(req, form) {
  const h = req.headers.authorization || '';
  let basic = null;
  const m = /^Basic\s+(\S+)$/i.exec(h);
  if (m) {
    const s = Buffer.from(m[1], 'base64').toString('utf8'); const i = s.indexOf(':');
    const dec = (x) => { try { return decodeURIComponent(x.replace(/\+/g, ' ')); } catch { return null; } };
    if (i > 0) basic = { id: dec(s.slice(0, i)), secret: dec(s.slice(i + 1)) };
  }
  if (basic && form.client_secret !== undefined) return { error: 'client authenticated with both HTTP Basic and client_secret' };
  if (basic && form.client_id !== undefined && form.client_id !== basic.id) return { error: 'client_id does not match HTTP Basic' };
  const c = basic ? { ...basic, how: 'basic' } : { id: form.client_id, secret: form.client_secret, how: 'body' };
  const client = clients.get(c.id);
  if (!client || client.client_secret !== c.secret) return { error: 'The client_id and/or client_secret passed are incorrect.' };
  return { client, how: c.how };
}

function issue(p, base, u, cfg, refreshTok) {
  const expiring = p.name !== 'github' || cfg.expiring_tokens;
  const t = { ...base, access_token: p.access(cfg), issued: now(),
    expires_in: Number(cfg.expires_in), refresh_token: refreshTok };
  state.access.set(t.access_token, { provider: p.name, client_id: t.client_id, userId: t.userId, scopes: t.scopes,
    exp: expiring ? t.issued + t.expires_in * 1000 : null });
  if (refreshTok) state.refresh.set(refreshTok, { provider: p.name, client_id: t.client_id, userId: t.userId, scopes: t.scopes });
  if (p.tokenBody) return p.tokenBody(t, cfg);
  return { access_token: t.access_token, token_type: p.tokenType, expires_in: t.expires_in,
    ...(refreshTok ? { refresh_token: refreshTok } : {}),
    ...(p.name === 'amazon' ? {} : { scope: p.scopeOut ? p.scopeOut(t.scopes) : t.scopes.join(' ') }),
    ...(p.tokenExtra ? p.tokenExtra(t) : {}), ...idToken(p, t, u) };
}

function token(p, req, res, q, form) {
  const cfg = state.p[p.name].config;
  const json = p.name !== 'github' || /application\/json/i.test(req.headers.accept || '');
  const answer = (status, body) => (json ? send(res, status, body, NO_STORE)
    : send(res, status, formEncode(body), { ...NO_STORE, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }));
  const fail = (err, desc, sub) => {
    const [status, body] = p.tokenError ? p.tokenError(err, desc, sub, cfg)
      : [err === 'invalid_client' ? 401 : 400, { error: err, error_description: desc }];
    return answer(status, body);
  };
  if (req.method === 'GET' && p.getToken) form = q;
  else if (req.method !== 'POST') return fail('invalid_request', 'the token endpoint takes POST');
  else if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(req.headers['content-type'] || '')) return fail('invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
  const auth = clientAuth(req, form);
  if (auth.error) return fail('invalid_client', auth.error);
  if (!cfg.auth_methods.includes(auth.how)) return fail('invalid_client', `client authentication by ${auth.how} is not accepted`);
  const grant = form.grant_type ?? (p.impliedGrant && form.code !== undefined ? 'authorization_code' : undefined);
  if (grant === 'authorization_code') {
    const c = state.codes.get(form.code);
    if (!c || c.provider !== p.name || c.client_id !== auth.client.client_id) return fail('invalid_grant', 'The code passed is incorrect or expired.', 'code');
    if (c.used) return fail('invalid_grant', 'This authorization code has been used.', 'used');
    c.used = true;
    if (c.exp < now()) return fail('invalid_grant', 'The code passed is incorrect or expired.', 'code');
    if (form.redirect_uri !== c.redirect_uri && !(p.optionalRedirectAtToken && form.redirect_uri === undefined)) return fail('invalid_grant', 'The redirect_uri MUST match the registered callback URL for this application.', 'redirect_uri');
    if (c.challenge) {
      const v = form.code_verifier;
      const ok = typeof v === 'string' && /^[A-Za-z0-9._~-]{43,128}$/.test(v)
        && (c.method === 'S256' ? b64u(crypto.createHash('sha256').update(v).digest()) : v) === c.challenge;
      if (!ok) return fail('invalid_grant', 'The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.', 'verifier');
    }
    const scopes = p.grantScopes ? p.grantScopes(c.scopes) : c.scopes;
    const refreshOn = cfg.refresh ?? p.issueRefresh(cfg, c);
    const base = { provider: p.name, client_id: c.client_id, userId: c.userId, scopes };
    return answer(200, issue(p, base, userOf(p, c.userId), cfg, refreshOn && p.refresh ? p.refresh() : undefined));
  }
  if (grant === 'refresh_token') {
    if (!p.refresh) return fail('unsupported_grant_type', 'refresh tokens are not issued by this provider');
    const r = state.refresh.get(form.refresh_token);
    if (!r || r.provider !== p.name || r.client_id !== auth.client.client_id) return fail('invalid_grant', 'The refresh token passed is incorrect, expired or revoked.', 'refresh');
    let next;
    if (cfg.rotate_refresh) { state.refresh.delete(form.refresh_token); next = p.refresh(); } else if (p.echoRefresh !== false) next = form.refresh_token;
    const body = issue(p, { provider: p.name, client_id: r.client_id, userId: r.userId, scopes: r.scopes }, userOf(p, r.userId), cfg, next);
    return answer(200, body);
  }
  return fail(grant === undefined ? 'invalid_request' : 'unsupported_grant_type', grant === undefined ? 'grant_type is required' : `grant_type ${grant} is not supported`);
}

// ---------------------------------------------------------------- user endpoints

function userOf(p, id) {
  const ps = state.p[p.name];
  return (ps.users.get(id) || ps.users.get(ps.defaultUserId)).user;
}

function api(p, req, res, q, path) {
  const cfg = state.p[p.name].config;
  const err = (kind) => { const [s, b, h] = p.apiError(kind); send(res, s, b, h); };
  if (p.requireUA && !req.headers['user-agent']) {
    return send(res, 403, 'Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n');
  }
  if (cfg.userinfo_status) return cfg.userinfo_status === 401 ? err('invalid') : send(res, cfg.userinfo_status, { error: 'forced', status: cfg.userinfo_status, message: 'status forced by /__test/config' });
  const m = /^(\S+)\s+(\S+)$/.exec(req.headers.authorization || '');
  let tok = m && (p.tokenScheme || /^bearer$/i).test(m[1]) ? m[2] : null;
  if (!tok && p.queryToken) tok = q.access_token || (p.name === 'amazon' ? req.headers['x-amz-access-token'] : null);
  if (!tok) return err('missing');
  const t = state.access.get(tok);
  if (!t || t.provider !== p.name) return err(state.revoked.has(tok) ? 'revoked' : 'invalid');
  if (t.exp !== null && t.exp <= now()) return err('expired');
  if (p.clientIdHeader && req.headers['client-id'] !== t.client_id) return err('client');
  const rec = state.p[p.name].users.get(t.userId) || { user: userOf(p, t.userId), emails: [] };
  const hdr = p.name === 'github' ? { 'x-oauth-scopes': t.scopes.join(', '), 'x-accepted-oauth-scopes': path === '/user/emails' ? 'user, user:email' : '' } : {};
  if (path === '/user/emails') return has(t.scopes, 'user', 'user:email') ? send(res, 200, rec.emails, hdr) : err('scope');
  const view = p.view ? p.view(rec.user, t.scopes, q) : rec.user;
  return view ? send(res, 200, view, hdr) : err('scope');
}

// ---------------------------------------------------------------- test controls

function control(req, res, path, q, body) {
  const need = (name) => { if (!PROVIDERS[name]) throw new Error(`unknown provider ${JSON.stringify(name)}`); return name; };
  const all = (name) => (name === undefined ? Object.keys(PROVIDERS) : [need(name)]);
  if (path === '/__test/requests' && req.method === 'GET') {
    const list = state.requests.filter((r) => !q.provider || r.provider === q.provider);
    if (q.clear) state.requests = state.requests.filter((r) => q.provider && r.provider !== q.provider);
    return send(res, 200, list);
  }
  if (path === '/__test/config' && req.method === 'GET') return send(res, 200, state.p[need(q.provider)].config);
  if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });
  if (path === '/__test/user') { setUser(need(body.provider), body.user, body.emails); return send(res, 200, { ok: true }); }
  if (path === '/__test/config') {
    const unknown = Object.keys(body).filter((k) => k !== 'provider' && !CONFIG_KEYS.includes(k));
    if (unknown.length) throw new Error(`unknown config keys: ${unknown.join(', ')}`);
    const out = {}; for (const n of all(body.provider)) out[n] = setConfig(n, body);
    return send(res, 200, body.provider ? out[body.provider] : out);
  }
  if (path === '/__test/revoke') { all(body.provider).forEach(revoke); return send(res, 200, { ok: true }); }
  if (path === '/__test/client') { addClient(body); return send(res, 200, { ok: true }); }
  if (path === '/__test/reset') { reset(); return send(res, 200, { ok: true }); }
  return send(res, 404, { error: 'no such control' });
}

// ---------------------------------------------------------------- dispatch

const server = http.createServer((req, res) => {
  const chunks = []; let size = 0;
  req.on('data', (c) => { size += c.length; if (size > 1 << 20) req.destroy(); else chunks.push(c); });
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://127.0.0.1');
    const q = qobj(url.searchParams);
    try {
      if (url.pathname.startsWith('/__test/')) return control(req, res, url.pathname, q, raw ? JSON.parse(raw) : {});
      const mm = /^\/([a-z]+)(\/.*)$/.exec(url.pathname);
      const p = mm && PROVIDERS[mm[1]];
      if (!p) return send(res, 404, { error: 'not_found' });
      const form = /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] || '') ? qobj(new URLSearchParams(raw)) : {};
      state.requests.push({ provider: p.name, method: req.method, path: url.pathname, query: q,
        headers: { ...req.headers }, form, ...(raw && !Object.keys(form).length ? { body: raw } : {}), time: now() });
      const path = mm[2];
      if (p.routes.authorize.test(path) && req.method === 'GET') return authorize(p, req, res, q);
      if (p.routes.token.test(path)) return token(p, req, res, q, form);
      if (p.routes.api.test(path) && req.method === 'GET') return api(p, req, res, q, path);
      return send(res, 404, { error: 'not_found' });
    } catch (e) {
      return send(res, 400, { error: 'bad_request', message: e.message });
    }
  });
});
server.on('error', (e) => die(e.message));
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
