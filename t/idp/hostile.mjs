// A broken identity provider for t/94-broken-idps.t: one HTTP server whose
// first path segment names a case, "<endpoint>-<how>".  Under /<case>/ it
// is a complete OpenID provider (discovery, auth, token, userinfo, JWKS)
// that misbehaves only at <endpoint> (discovery, token, userinfo, jwks,
// metadata), in the way <how> says:
//
//   slow     answers properly, after 10 s
//   hole     accepts and never answers
//   html     200 with an HTML page
//   big      200 with a 10 MB JSON (or XML) body
//   loop     302 to itself, forever
//   trunc    Content-Length larger than what is sent, then closes
//   issuer   (discovery) names another issuer
//   nokid    (jwks) a key set without the ID token's kid
//   garbage  (metadata) 200 with bytes that are not XML
//   scheme   (discovery) the endpoint named by the case's third word
//            (authorization, token, userinfo, jwks) is a file: URL
//
// Any other case ("good") behaves.  The authorization endpoint sends the
// browser straight back with a code that carries the nonce, so that no
// state is kept.  GET /__stats answers how often each path was asked.
//
//     node t/idp/hostile.mjs --port N

import http from 'node:http';
import crypto from 'node:crypto';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
const base = `http://127.0.0.1:${port}`;

const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = (k, kid) => ({ ...k.publicKey.export({ format: 'jwk' }), kid,
                           alg: 'RS256', use: 'sig' });

const stats = {};
const b64u = (b) => Buffer.from(b).toString('base64url');

function idToken(iss, aud, nonce) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'JWT' }));
  const body = b64u(JSON.stringify({ iss, aud, sub: 'u1', nonce,
                                     iat: now, exp: now + 300 }));
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${head}.${body}`),
                          key.privateKey);
  return `${head}.${body}.${b64u(sig)}`;
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': type,
                          'Content-Length': Buffer.byteLength(body),
                          ...headers });
  res.end(body);
}

// what the endpoint says when it behaves: [type, body] or a redirect
function proper(c, what, url, form) {
  const iss = `${base}/${c}`;
  const json = (o) => ['application/json', JSON.stringify(o)];

  switch (what) {
  case '.well-known/openid-configuration': {
    const d = { issuer: iss, authorization_endpoint: `${iss}/auth`,
                token_endpoint: `${iss}/token`,
                userinfo_endpoint: `${iss}/userinfo`, jwks_uri: `${iss}/jwks` };
    const m = c.match(/^discovery-scheme-(\w+)$/);
    if (m) {
      d[m[1] === 'jwks' ? 'jwks_uri' : `${m[1]}_endpoint`] = 'file:///etc/hostname';
    }
    if (c === 'discovery-issuer') {
      d.issuer = 'http://127.0.0.1:1/someone-else';
    }
    return json(d);
  }
  case 'auth': {
    const q = url.searchParams;
    const code = b64u(JSON.stringify({ n: q.get('nonce'), a: q.get('client_id') }));
    return { location: `${q.get('redirect_uri')}?code=${code}&state=${q.get('state')}` };
  }
  case 'token': {
    let c0 = {};
    try { c0 = JSON.parse(Buffer.from(form.get('code') || '', 'base64url')); } catch (e) { }
    return json({ access_token: 'at-' + crypto.randomUUID(), token_type: 'Bearer',
                  expires_in: 300, id_token: idToken(iss, c0.a || 'test-client', c0.n) });
  }
  case 'userinfo':
    return json({ sub: 'u1', email: `u1@${c}.test`, email_verified: true,
                  name: 'U One', preferred_username: 'u1' });
  case 'jwks':
    return json({ keys: c === 'jwks-nokid' ? [jwk(other, 'k2')] : [jwk(key, 'k1')] });
  case 'metadata':
    return ['application/samlmetadata+xml', '<EntityDescriptor/>'];
  default:
    return null;
  }
}

const endpointOf = {
  discovery: '.well-known/openid-configuration', token: 'token',
  userinfo: 'userinfo', jwks: 'jwks', metadata: 'metadata',
};

function handle(req, res, body) {
  const url = new URL(req.url, base);

  if (url.pathname === '/__stats') {
    return send(res, 200, 'application/json', JSON.stringify(stats));
  }

  const m = url.pathname.match(/^\/([\w-]+)\/(.*)$/);
  if (!m) {
    return send(res, 404, 'text/plain', 'no case\n');
  }

  const [, c, what] = m;
  stats[`${c}/${what}`] = (stats[`${c}/${what}`] || 0) + 1;

  const [ep, how] = c.split('-');
  const bad = endpointOf[ep] === what ? how : null;
  const form = new URLSearchParams(body);
  const out = proper(c, what, url, form);

  if (out === null) {
    return send(res, 404, 'text/plain', 'not here\n');
  }

  const good = () => out.location
    ? send(res, 302, 'text/plain', '', { Location: out.location })
    : send(res, 200, out[0], out[1]);

  switch (bad) {
  case 'slow':
    setTimeout(() => { if (!res.destroyed) good(); }, 10000);
    return;
  case 'hole':
    return;     // the socket stays open until the client gives up
  case 'html':
    return send(res, 200, 'text/html',
                '<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>\n');
  case 'big': {
    const fill = 'a'.repeat(10 * 1024 * 1024);
    return send(res, 200, out[0],
                what === 'metadata' ? `<EntityDescriptor a="${fill}"/>`
                                    : `{"fill":"${fill}"}`);
  }
  case 'loop':
    return send(res, 302, 'text/plain', '', { Location: req.url });
  case 'trunc':
    res.writeHead(200, { 'Content-Type': out[0], 'Content-Length': 100000 });
    res.write(out[1].slice(0, 20));
    setTimeout(() => res.destroy(), 50);
    return;
  case 'garbage':
    return send(res, 200, 'application/xml', '\u0000\u0001<<<not xml at all &&&');
  default:
    return good();
  }
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => handle(req, res, body));
});

server.keepAliveTimeout = 0;
server.listen(port, '127.0.0.1', () => process.stdout.write(`READY ${base}\n`));
process.on('SIGTERM', () => process.exit(0));
