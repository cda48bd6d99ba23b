/*
 * The Identities dashboard of ngx_http_identity_module.
 *
 * Served by the admin location next to the JSON API (app/...), so every URL
 * here is relative: the location's prefix is the administrator's choice.
 * Views are chosen by the hash (#/, #/users/au_..., #/sessions/as_...,
 * #/users/au_.../endpoints/ep_...), so nginx serves a single HTML file.
 * Strings from the API only ever reach the page as text nodes.
 */

'use strict';

(() => {
  const PAGE = 50;
  const LOGOUT = '../_identity/logout?redirect_path=/';
  const SVG = 'http://www.w3.org/2000/svg';

  const state = {
    me: null,
    meReady: null,
    providers: new Set(),
    names: new Map(),
    flash: null,
    renderId: 0,
    first: true,
  };

  /* DOM */

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);

    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) {
        continue;
      }

      if (k === 'class') {
        el.className = v;
      } else if (k.startsWith('on')) {
        el.addEventListener(k.slice(2), v);
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }

    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) {
        el.append(kid instanceof Node ? kid : String(kid));
      }
    }

    return el;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG, 'svg');
    const use = document.createElementNS(SVG, 'use');

    svg.setAttribute('class', 'icon');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    use.setAttribute('href', '#i-' + name);
    svg.append(use);

    return svg;
  }

  const dash = () => h('span', { class: 'none' }, '\u2014');

  function text(v) {
    return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
  }

  /* only http(s) or relative URLs become links */

  function safeUrl(v) {
    try {
      const u = new URL(text(v), location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function extLink(url, label) {
    const href = /^https?:\/\//i.test(text(url)) ? safeUrl(url) : null;

    return href
      ? h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, label)
      : h('span', null, label);
  }

  /* time */

  const absFmt = new Intl.DateTimeFormat(undefined, {
    dateStyle: 'medium', timeStyle: 'short',
  });

  function parseTime(v) {
    const t = typeof v === 'string' && v ? Date.parse(v) : NaN;
    return Number.isNaN(t) ? null : t;
  }

  function relative(t) {
    const diff = (Date.now() - t) / 1000;
    const s = Math.abs(diff);
    const steps = [
      [3600, 60, 'min', 'min'], [86400, 3600, 'h', 'h'],
      [2592000, 86400, 'day', 'days'], [31536000, 2592000, 'month', 'months'],
      [Infinity, 31536000, 'year', 'years'],
    ];

    if (s < 45) {
      return diff >= 0 ? 'just now' : 'in a few seconds';
    }

    for (const [limit, unit, one, many] of steps) {
      if (s < limit) {
        const n = Math.max(1, Math.floor(s / unit));
        const span = `${n} ${n === 1 ? one : many}`;
        return diff >= 0 ? `${span} ago` : `in ${span}`;
      }
    }

    return '';
  }

  /* "3 min ago", the RFC 3339 value in title */

  function ago(v) {
    const t = parseTime(v);

    return t === null
      ? dash()
      : h('time', { datetime: v, title: v }, relative(t));
  }

  /* "Nov 28, 2026, 2:20 AM · 3 min ago" */

  function when(v) {
    const t = parseTime(v);

    if (t === null) {
      return dash();
    }

    return h('span', null,
      h('time', { datetime: v, title: v }, absFmt.format(t)),
      h('span', { class: 'muted when-rel' }, ` \u00b7 ${relative(t)}`));
  }

  /* the API */

  class ApiError extends Error {
    constructor(status, msg, code) {
      super(msg);
      this.status = status;
      this.code = code || '';
    }
  }

  async function api(path, method = 'GET') {
    const headers = { Accept: 'application/json' };
    let res;

    if (method !== 'GET') {
      await state.meReady;

      if (state.me && typeof state.me.csrf_token === 'string') {
        headers['X-CSRF-Token'] = state.me.csrf_token;
      }
    }

    try {
      res = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        redirect: 'manual',
      });
    } catch (e) {
      throw new ApiError(0, 'The server cannot be reached. '
                            + 'Check the connection and try again.');
    }

    /* a redirect to the login page: the session is gone */
    if (res.type === 'opaqueredirect') {
      throw new ApiError(401, 'Your session ended.');
    }

    if (res.status === 204) {
      return null;
    }

    let body = null;

    try {
      body = JSON.parse(await res.text());
    } catch (e) {
      body = null;
    }

    if (!res.ok) {
      const msg = body && typeof body.msg === 'string' && body.msg
        ? body.msg : `${res.status} ${res.statusText}`.trim();
      throw new ApiError(res.status, msg, body && body.error_code);
    }

    if (body === null || typeof body !== 'object') {
      throw new ApiError(res.status, 'The server did not answer with JSON.');
    }

    return body;
  }

  function query(path, params) {
    const qs = new URLSearchParams(params).toString();
    return qs ? `${path}?${qs}` : path;
  }

  /* next_page_uri is absolute: keep its query, on our relative path */

  function nextPage(path, next) {
    if (typeof next !== 'string' || !next) {
      return null;
    }

    try {
      const u = new URL(next, location.href);
      return u.search ? path + u.search : null;
    } catch (e) {
      return null;
    }
  }

  const enc = encodeURIComponent;
  const userHref = (id) => `#/users/${enc(id)}`;
  const sessionHref = (id) => `#/sessions/${enc(id)}`;
  const endpointHref = (uid, ep) => `#/users/${enc(uid)}/endpoints/${enc(ep)}`;

  /* states */

  function loading(what) {
    return h('div', { class: 'state state-loading', role: 'status',
                      'data-testid': 'loading' },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }), what);
  }

  function empty(title, detail) {
    return h('div', { class: 'state state-empty', 'data-testid': 'empty' },
      h('p', { class: 'state-title' }, title),
      detail ? h('p', { class: 'muted' }, detail) : null);
  }

  function failure(err, retry, what) {
    const box = h('div', { class: 'state state-error', role: 'alert',
                           'data-testid': 'error' });
    const status = err instanceof ApiError ? err.status : -1;

    if (status === 401 || status === 403) {
      box.append(
        h('p', { class: 'state-title' }, 'Your session ended, sign in again'),
        h('p', null, h('a', {
          href: location.pathname + location.search,
          onclick: (e) => { e.preventDefault(); location.reload(); },
        }, 'Reload the page to sign in')));
      return box;
    }

    if (status === 503) {
      box.append(
        h('p', { class: 'state-title' }, 'Session store unavailable'),
        h('p', { class: 'muted' },
          'The identity store is not answering. Try again in a moment.'));
    } else if (status === 404) {
      box.append(h('p', { class: 'state-title' }, `${what || 'Page'} not found`),
                 h('p', { class: 'muted' }, 'It may have been deleted. ',
                   h('a', { href: '#/' }, 'Back to identities')));
      return box;
    } else {
      box.append(h('p', { class: 'state-title' }, 'Something went wrong'),
                 h('p', { class: 'muted' },
                   err instanceof Error ? err.message : String(err)));
    }

    if (retry) {
      box.append(h('p', null, h('button', {
        type: 'button', class: 'btn', onclick: retry,
      }, 'Try again')));
    }

    return box;
  }

  /* the notice shown once, on the next view */

  function showFlash() {
    const area = document.getElementById('flash');
    const f = state.flash;

    state.flash = null;
    area.replaceChildren();

    if (!f) {
      return;
    }

    if (f.error) {
      area.append(failure(f.error));
      area.scrollIntoView({ block: 'nearest' });
      return;
    }

    const note = h('div', { class: 'notice', role: 'status',
                            'data-testid': 'notice' },
      h('span', null, f.text),
      h('button', {
        type: 'button', class: 'btn-link', 'aria-label': 'Dismiss',
        onclick: () => note.remove(),
      }, icon('x')));

    area.append(note);
  }

  /* pieces */

  function initials(u) {
    const s = text(u.name) || text(u.username) || text(u.email) || '';
    const words = s.replace(/@.*/, '').split(/[^\p{L}\p{N}]+/u)
      .filter(Boolean);
    const two = words.length > 1 ? [...words[0]][0] + [...words[1]][0]
      : [...(words[0] || '?')].slice(0, 2).join('');
    return two.toUpperCase();
  }

  function avatar(u, big) {
    let n = 0;

    for (const c of text(u.id)) {
      n = (n * 31 + c.charCodeAt(0)) % 997;
    }

    return h('span', { class: `avatar avatar-${n % 6}${big ? ' avatar-lg' : ''}`,
                       'aria-hidden': 'true' }, initials(u));
  }

  function displayName(u) {
    return text(u.name) || text(u.username) || text(u.email) || text(u.id);
  }

  function providerBadge(idp) {
    const name = idp && text(idp.name);

    return name
      ? h('span', { class: 'badge', title: text(idp.url) || null }, name)
      : dash();
  }

  function crumbs(...items) {
    return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('ol', null, items.map((it, i) => h('li', null,
        i < items.length - 1
          ? h('a', { href: it.href }, it.label)
          : h('span', { 'aria-current': 'page' }, it.label)))));
  }

  function heading(title, sub) {
    return h('div', { class: 'page-title' },
      h('h1', { tabindex: '-1' }, title),
      sub ? h('p', { class: 'muted' }, sub) : null);
  }

  function card(title, ...body) {
    return h('section', { class: 'card' },
      title ? h('h2', { class: 'card-title' }, title) : null, ...body);
  }

  function field(label, value, testid) {
    const v = value instanceof Node ? value
      : (text(value) ? text(value) : dash());

    return [h('dt', null, label),
            h('dd', { 'data-testid': testid || null }, v)];
  }

  function table(caption, testid, columns) {
    const body = h('tbody');
    const el = h('table', { class: 'table', 'data-testid': testid || null },
      h('caption', { class: 'sr-only' }, caption),
      h('thead', null, h('tr', null,
        columns.map((c) => h('th', { scope: 'col' }, c)))),
      body);

    return { el, body };
  }

  function td(label, ...kids) {
    return h('td', { 'data-label': label }, ...kids);
  }

  /* a click anywhere on a row follows its link; the link stays the target */

  function rowLink(tr, href) {
    tr.classList.add('row-link');
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a, button')
          || (window.getSelection() || '').toString()) {
        return;
      }

      location.hash = href;
    });

    return tr;
  }

  /* a list with "Load more": rows appended page by page */

  function pager(container, first, makeRow, opts) {
    const more = h('div', { class: 'pager' });
    let tbl = null;
    let count = 0;

    async function load(path) {
      const btn = more.querySelector('button');
      const refocus = btn !== null && document.activeElement === btn;
      let data;

      if (btn) {
        btn.disabled = true;
        btn.textContent = 'Loading\u2026';
      } else {
        more.replaceChildren(loading(opts.loading));
      }

      try {
        data = await api(path);
      } catch (err) {
        more.replaceChildren((opts.failed && opts.failed(err))
                             || failure(err, () => load(path)));
        return;
      }

      if (!container.isConnected) {
        return;
      }

      let list = Array.isArray(data[opts.key]) ? data[opts.key] : [];

      if (opts.filter) {
        list = list.filter(opts.filter);
      }

      if (opts.seen) {
        opts.seen(list);
      }

      const next = nextPage(opts.path, data.next_page_uri);

      if (tbl === null && (list.length || next)) {
        tbl = table(opts.caption, opts.testid, opts.columns);
        container.append(tbl.el);
      }

      const rows = list.map(makeRow);

      if (tbl !== null) {
        tbl.body.append(...rows);
      }

      /* "Load more" goes away: the keyboard goes on at the first new row */
      if (refocus && rows.length) {
        rows[0].querySelector('a').focus();
      }

      count += list.length;

      more.replaceChildren();

      if (count === 0 && !next) {
        container.append(opts.empty());
      }

      if (next) {
        more.append(h('button', {
          type: 'button', class: 'btn', 'data-testid': 'load-more',
          onclick: () => load(next),
        }, 'Load more'));
      }

      if (opts.counted) {
        opts.counted(count, Boolean(next));
      }
    }

    container.after(more);
    load(first);
  }

  /* #/ : the identities */

  function searchForm(q, provider) {
    const input = h('input', {
      type: 'search', name: 'q', id: 'search-q', value: q,
      placeholder: 'Name, email, username or au_ ID', autocomplete: 'off',
      spellcheck: 'false', 'data-testid': 'search-input',
    });
    const select = h('select', { name: 'provider', id: 'search-provider',
                                 'data-testid': 'search-provider' });
    const form = h('form', { class: 'search', role: 'search',
                             'aria-label': 'Filter identities' },
      h('label', { for: 'search-q', class: 'sr-only' },
        'Search by name, email, username or identity ID'),
      h('div', { class: 'search-field' }, icon('search'), input),
      h('label', { for: 'search-provider', class: 'sr-only' },
        'Identity provider'),
      select,
      h('button', { type: 'submit', class: 'btn btn-primary',
                    'data-testid': 'search-submit' }, 'Search'),
      q || provider
        ? h('a', { href: '#/', class: 'btn btn-quiet',
                   'data-testid': 'search-clear' }, 'Clear')
        : null);

    function fill() {
      const names = [...state.providers].sort();
      const current = select.value || provider;

      select.replaceChildren(h('option', { value: '' }, 'All providers'),
        ...names.map((n) => h('option', { value: n }, n)));
      select.value = current;
    }

    form.addEventListener('submit', (e) => {
      const params = new URLSearchParams();
      const t = input.value.trim();

      e.preventDefault();

      if (t) {
        params.set('q', t);
      }

      if (select.value) {
        params.set('provider', select.value);
      }

      const hash = params.toString() ? `#/?${params}` : '#/';

      if (location.hash === hash) {
        render();
      } else {
        location.hash = hash;
      }
    });

    select.addEventListener('change', () => form.requestSubmit());
    fill();

    return { form, fill };
  }

  function userRow(u) {
    const href = userHref(u.id);
    const username = text(u.username);

    return rowLink(h('tr', { 'data-testid': 'user-row',
                             'data-user-id': text(u.id) },
      td('Provider', providerBadge(u.identity_provider)),
      h('td', { class: 'cell-primary', 'data-label': 'User' },
        h('a', { href, class: 'user-link' },
          avatar(u),
          h('span', { class: 'user-names' },
            h('span', { class: 'user-name' }, displayName(u)),
            username && username !== displayName(u)
              ? h('span', { class: 'muted' }, username) : null))),
      td('Email', text(u.email) || dash()),
      td('ID', h('code', { class: 'id' }, text(u.id))),
      td('Last active', ago(u.last_active))), href);
  }

  function viewUsers(view, route) {
    const q = route.params.get('q') || '';
    const provider = route.params.get('provider') || '';
    const params = { limit: PAGE };
    const filtered = Boolean(q || provider);
    const count = h('p', { class: 'count muted', 'aria-live': 'polite' });

    if (provider) {
      state.providers.add(provider);
      params.provider = provider;
    }

    if (q.startsWith('au_')) {
      params.id = q.toLowerCase();
    } else if (q) {
      params.user = q;
    }

    document.title = 'Identities';

    const search = searchForm(q, provider);
    const results = h('div', { class: 'results' });

    view.append(
      heading('Identities', 'Everyone who signed in through an identity '
                            + 'provider, most recently active first.'),
      h('div', { class: 'card card-table' },
        h('div', { class: 'toolbar' }, search.form, count), results));

    pager(results, query('app/users', params), userRow, {
      key: 'application_users', path: 'app/users', testid: 'users-table',
      caption: 'Identities',
      columns: ['Provider', 'User', 'Email', 'ID', 'Last active'],
      loading: 'Loading identities\u2026',
      seen: (list) => {
        const before = state.providers.size;

        for (const u of list) {
          if (u.identity_provider && text(u.identity_provider.name)) {
            state.providers.add(text(u.identity_provider.name));
          }
        }

        if (state.providers.size !== before) {
          search.fill();
        }
      },
      counted: (n, more) => {
        count.textContent = n
          ? `${n}${more ? '+' : ''} identit${n === 1 && !more ? 'y' : 'ies'}`
          : '';
      },
      empty: () => (filtered
        ? empty('No identities match this search.',
                'Search matches a part of the name, email or username, or '
                + 'an identity ID (au_\u2026).')
        : empty('No identities yet \u2014 users appear here after they '
                + 'sign in')),
    });
  }

  /* sessions, in a user's page or an endpoint's page */

  function browserLabel(s) {
    const ua = (s.browser_session && s.browser_session.user_agent) || {};
    const b = text(ua.browser_name);
    const os = text(ua.os_name);

    if (b || os) {
      return [b, os].filter(Boolean).join(' on ');
    }

    return text(ua.raw) ? h('span', { class: 'ua', title: text(ua.raw) },
                            text(ua.raw)) : dash();
  }

  function sessionRow(s, withEndpoint, withUser) {
    const href = sessionHref(s.id);
    const bs = s.browser_session || {};
    const loc = bs.location || {};
    const uid = s.application_user ? text(s.application_user.id) : '';

    return rowLink(h('tr', { 'data-testid': 'session-row',
                             'data-session-id': text(s.id),
                             'data-country': text(loc.country_code) || null },
      h('td', { class: 'cell-primary', 'data-label': 'Session' },
        h('a', { href }, h('code', { class: 'id' }, text(s.id)))),
      withUser
        ? td('Identity', uid ? h('a', { href: userHref(uid),
                                        'data-identity': uid },
                                 identityLabel(uid)) : dash())
        : null,
      withEndpoint
        ? td('Endpoint', text(s.public_url)
             || (s.endpoint && text(s.endpoint.uri)) || dash())
        : null,
      td('Browser', browserLabel(s)),
      td('IP address', text(bs.ip_address) || dash()),
      withUser ? td('Country', text(loc.country_code)
                    ? h('span', { title: country(loc.country_code) },
                        text(loc.country_code)) : dash())
               : null,
      td('Risk', riskBadges(s.risk, true)),
      td('Last active', ago(s.last_active)),
      withUser ? null : td('Expires', ago(s.expires_at))), href);
  }

  /* in the sessions page, an identity is named once the names are known */

  function identityLabel(uid) {
    const name = state.names.get(uid);

    return name ? h('span', { title: uid }, name)
                : h('code', { class: 'id' }, uid);
  }

  function learnNames(users) {
    for (const u of users) {
      if (u && text(u.id)) {
        state.names.set(text(u.id), displayName(u));

        if (u.identity_provider && text(u.identity_provider.name)) {
          state.providers.add(text(u.identity_provider.name));
        }
      }
    }

    for (const a of document.querySelectorAll('a[data-identity]')) {
      if (state.names.has(a.dataset.identity)) {
        a.replaceChildren(identityLabel(a.dataset.identity));
      }
    }
  }

  function sessionList(container, path, params, withEndpoint, filter, opts) {
    const o = opts || {};
    const columns = ['Session', 'Browser', 'IP address', 'Risk',
                     'Last active', 'Expires'];

    if (o.withUser) {
      columns.splice(1, 0, 'Identity');
      columns.splice(4, 0, 'Country');
      columns.pop();
    }

    if (withEndpoint) {
      columns.splice(1, 0, 'Endpoint');
    }

    pager(container, query(path, params),
          (s) => sessionRow(s, withEndpoint, o.withUser), {
      key: 'application_sessions', path, testid: 'sessions-table',
      caption: 'Sessions', columns, filter,
      loading: 'Loading sessions\u2026',
      counted: o.counted,
      empty: o.empty || (() => empty('No sessions.',
                         'Sessions end when they expire, are deleted, or '
                         + 'the user logs out.')),
    });
  }

  /* #/users/{id} */

  function endpointRow(uid, e) {
    const href = endpointHref(uid, e.id);
    const n = Number(e.session_count);

    return rowLink(h('tr', { 'data-testid': 'endpoint-row',
                             'data-endpoint-id': text(e.id) },
      h('td', { class: 'cell-primary', 'data-label': 'Endpoint' },
        h('a', { href }, text(e.public_url) || text(e.id))),
      td('First access', ago(e.first_accessed)),
      td('Last access', ago(e.last_accessed)),
      td('Sessions', Number.isFinite(n) ? String(n) : dash())), href);
  }

  async function viewUser(view, route, ctx) {
    const id = route.id;
    let u;

    document.title = 'Identity \u00b7 Identities';
    view.append(crumbs({ href: '#/', label: 'Identities' },
                       { label: id }),
                loading('Loading identity\u2026'));

    try {
      u = await api(`app/users/${enc(id)}`);
    } catch (err) {
      if (ctx.alive()) {
        view.lastChild.replaceWith(failure(err, render, 'Identity'));
      }
      return;
    }

    if (!ctx.alive()) {
      return;
    }

    const name = displayName(u);
    const idp = u.identity_provider || {};
    const endpoints = h('div', { class: 'card-body-flush' });
    const sessions = h('div', { class: 'card-body-flush' });
    const activity = h('div', { class: 'card-body-flush',
                                'data-testid': 'user-activity' });

    document.title = `${name} \u00b7 Identities`;

    const del = h('button', {
      type: 'button', class: 'btn btn-danger', 'data-testid': 'delete-user',
    }, icon('trash'), h('span', null, 'Delete user'));

    del.addEventListener('click', () => confirmDelete({
      opener: del,
      title: 'Delete this identity?',
      body: `${name} (${text(u.id)}) and all of its sessions will be deleted. `
            + 'They are signed out everywhere at once; signing in again '
            + 'creates a new identity.',
      path: `app/users/${enc(id)}`,
      done: () => {
        state.flash = { text: `Identity ${name} deleted.` };
        location.hash = '#/';
      },
    }));

    view.replaceChildren(
      crumbs({ href: '#/', label: 'Identities' }, { label: name }),
      h('div', { class: 'detail', 'data-testid': 'user-detail',
                 'data-user-id': text(u.id) },
        h('div', { class: 'detail-head' },
          avatar(u, true),
          h('div', { class: 'detail-title' },
            h('h1', { tabindex: '-1' }, name),
            h('p', { class: 'muted' }, text(u.email) || text(u.username))),
          h('div', { class: 'detail-actions' }, del)),
        h('div', { class: 'grid' },
          card('Identity provider',
            h('dl', { class: 'fields' },
              field('Name', providerBadge(idp), 'field-provider'),
              field('URL', text(idp.url) ? extLink(idp.url, text(idp.url))
                                         : null, 'field-provider-url'))),
          card('Details',
            h('dl', { class: 'fields' },
              field('Name', u.name, 'field-name'),
              field('Username', u.username, 'field-username'),
              field('Email', u.email, 'field-email'),
              field('Provider user ID', text(u.provider_user_id)
                    ? h('code', null, text(u.provider_user_id)) : null,
                    'field-provider-user-id'),
              field('Identity ID', h('code', null, text(u.id)), 'field-id'),
              field('Created', when(u.created_at), 'field-created'),
              field('Last login', when(u.last_login), 'field-last-login'),
              field('Last active', when(u.last_active), 'field-last-active')))),
        card('Endpoints', h('p', { class: 'card-sub muted' },
          'The sites this identity used, most recent first.'), endpoints),
        card('Sessions', sessions),
        card('Recent activity', h('p', { class: 'card-sub muted' },
          'What happened to this identity, newest first.'), activity)));

    loadEndpoints(endpoints, id);
    sessionList(sessions, `app/users/${enc(id)}/sessions`, { limit: PAGE },
                true);
    eventList(activity, { user: text(u.id) || id, limit: 20 }, false);
  }

  async function loadEndpoints(container, id) {
    let data;

    container.replaceChildren(loading('Loading endpoints\u2026'));

    try {
      data = await api(`app/users/${enc(id)}/endpoints`);
    } catch (err) {
      container.replaceChildren(failure(err, () => loadEndpoints(container,
                                                                 id)));
      return;
    }

    const list = Array.isArray(data.endpoints) ? data.endpoints : [];

    if (list.length === 0) {
      container.replaceChildren(empty('No endpoints recorded.'));
      return;
    }

    const t = table('Endpoints', 'endpoints-table',
                    ['Endpoint', 'First access', 'Last access', 'Sessions']);

    for (const e of list) {
      t.body.append(endpointRow(id, e));
    }

    container.replaceChildren(t.el);
  }

  /* #/users/{id}/endpoints/{ep} */

  async function viewEndpoint(view, route, ctx) {
    const { id, ep } = route;
    let u = null;
    let eps = null;

    document.title = 'Endpoint \u00b7 Identities';
    view.append(loading('Loading endpoint\u2026'));

    try {
      [u, eps] = await Promise.all([
        api(`app/users/${enc(id)}`),
        api(`app/users/${enc(id)}/endpoints`),
      ]);
    } catch (err) {
      if (ctx.alive()) {
        view.replaceChildren(
          crumbs({ href: '#/', label: 'Identities' },
                 { href: userHref(id), label: id }, { label: ep }),
          failure(err, render, 'Identity'));
      }
      return;
    }

    if (!ctx.alive()) {
      return;
    }

    const e = (Array.isArray(eps.endpoints) ? eps.endpoints : [])
      .find((x) => x && x.id === ep) || { id: ep };
    const url = text(e.public_url) || ep;
    const name = displayName(u);
    const sessions = h('div', { class: 'card-body-flush' });

    document.title = `${url} \u00b7 ${name} \u00b7 Identities`;

    view.replaceChildren(
      crumbs({ href: '#/', label: 'Identities' },
             { href: userHref(id), label: name }, { label: url }),
      h('div', { class: 'detail', 'data-testid': 'endpoint-detail',
                 'data-endpoint-id': ep },
        h('div', { class: 'detail-head' },
          h('div', { class: 'detail-title' },
            h('h1', { tabindex: '-1' }, url),
            h('p', { class: 'muted' }, `Sessions of ${name} on this endpoint`))),
        card(null, h('dl', { class: 'stats' },
          h('div', null, field('Endpoint', text(e.public_url)
            ? extLink(e.public_url, text(e.public_url)) : null)),
          h('div', null, field('First access', when(e.first_accessed))),
          h('div', null, field('Last access', when(e.last_accessed))),
          h('div', null, field('Sessions',
            Number.isFinite(Number(e.session_count))
              ? String(e.session_count) : null)))),
        card('Sessions', sessions)));

    sessionList(sessions, `app/users/${enc(id)}/sessions`,
                { endpoint: ep, limit: PAGE }, false,
                (s) => !s.endpoint || !s.endpoint.id || s.endpoint.id === ep);
  }

  /* #/sessions/{id} */

  function coordinates(loc) {
    const has = (v) => v !== null && v !== undefined && v !== '';
    const lat = Number(loc.latitude);
    const lon = Number(loc.longitude);

    if (!has(loc.latitude) || !has(loc.longitude) || !Number.isFinite(lat)
        || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180)
    {
      return { value: null, link: null };
    }

    const la = String(+lat.toFixed(5));
    const lo = String(+lon.toFixed(5));
    const r = Number(loc.lat_long_radius_km);
    const label = `${la}, ${lo}`
                  + (has(loc.lat_long_radius_km) && Number.isFinite(r)
                     ? ` (\u00b1${r} km)` : '');
    const href = `https://www.openstreetmap.org/?mlat=${la}&mlon=${lo}`
                 + `#map=10/${la}/${lo}`;

    return {
      value: label,
      link: h('a', { href, target: '_blank', rel: 'noopener noreferrer',
                     class: 'map-link', 'data-testid': 'map-link' },
        icon('map'), h('span', null, 'Open in map'),
        h('span', { class: 'sr-only' }, ' (new tab)')),
    };
  }

  const regions = (() => {
    try {
      return new Intl.DisplayNames(['en'], { type: 'region' });
    } catch (e) {
      return null;
    }
  })();

  function country(code) {
    const c = text(code).toUpperCase();
    let name = null;

    if (!c) {
      return null;
    }

    try {
      name = /^[A-Z]{2}$/.test(c) && regions ? regions.of(c) : null;
    } catch (e) {
      name = null;
    }

    return name && name !== c ? `${name} (${c})` : c;
  }

  const capital = (v) => text(v).charAt(0).toUpperCase() + text(v).slice(1);
  const join = (sep, ...parts) => parts.map(text).filter(Boolean).join(sep);

  async function viewSession(view, route, ctx) {
    const id = route.id;
    let s;

    document.title = 'Session \u00b7 Identities';
    view.append(crumbs({ href: '#/', label: 'Identities' }, { label: id }),
                loading('Loading session\u2026'));

    try {
      s = await api(`app/sessions/${enc(id)}`);
    } catch (err) {
      if (ctx.alive()) {
        view.lastChild.replaceWith(failure(err, render, 'Session'));
      }
      return;
    }

    if (!ctx.alive()) {
      return;
    }

    const bs = s.browser_session || {};
    const ua = bs.user_agent || {};
    const loc = bs.location || {};
    const uid = s.application_user ? text(s.application_user.id) : '';
    const ep = s.endpoint || {};
    const coords = coordinates(loc);
    const userCrumb = { href: uid ? userHref(uid) : '#/', label: uid || '?' };
    const crumbBar = crumbs({ href: '#/', label: 'Identities' }, userCrumb,
                            { label: 'Session' });

    const del = h('button', {
      type: 'button', class: 'btn btn-danger',
      'data-testid': 'delete-session',
    }, icon('trash'), h('span', null, 'Delete session'));

    del.addEventListener('click', () => confirmDelete({
      opener: del,
      title: 'Delete this session?',
      body: `Session ${text(s.id)} will be deleted: the browser that holds `
            + 'it is signed out at its next request.',
      path: `app/sessions/${enc(id)}`,
      done: () => {
        state.flash = { text: `Session ${text(s.id)} deleted.` };
        location.hash = uid ? userHref(uid) : '#/';
      },
    }));

    const endpointValue = text(ep.id) && uid
      ? h('a', { href: endpointHref(uid, ep.id) },
          text(s.public_url) || text(ep.uri) || text(ep.id))
      : (text(s.public_url) || text(ep.uri) || null);

    view.replaceChildren(crumbBar,
      h('div', { class: 'detail', 'data-testid': 'session-detail',
                 'data-session-id': text(s.id) },
        h('div', { class: 'detail-head' },
          h('div', { class: 'detail-title' },
            h('h1', { tabindex: '-1' }, 'Session'),
            h('p', null, h('code', { class: 'id' }, text(s.id)))),
          h('div', { class: 'detail-actions' }, del)),
        h('div', { class: 'grid' },
          card('Device',
            h('dl', { class: 'fields' },
              field('Device', join(' \u00b7 ', capital(ua.device_type),
                                   ua.device_family), 'field-device'),
              field('Browser', join(' ', ua.browser_name, ua.browser_version),
                    'field-browser'),
              field('OS', join(' ', ua.os_name, ua.os_version), 'field-os'),
              field('Agent', text(ua.raw)
                    ? h('code', { class: 'ua-raw' }, text(ua.raw)) : null,
                    'field-agent'))),
          card('Network',
            h('dl', { class: 'fields' },
              field('IP address', text(bs.ip_address)
                    ? h('code', null, text(bs.ip_address)) : null, 'field-ip'),
              field('Country', country(loc.country_code), 'field-country'),
              field('Coordinates', coords.value, 'field-coordinates'),
              coords.link ? [h('dt', { class: 'sr-only' }, 'Map'),
                             h('dd', { class: 'map' }, coords.link)] : null))),
        riskCard(s.risk),
        card('Session',
          h('dl', { class: 'fields fields-wide' },
            field('Identity', uid ? h('a', { href: userHref(uid) },
                                      h('code', null, uid)) : null,
                  'field-user'),
            field('Endpoint', endpointValue, 'field-endpoint'),
            field('Created', when(s.created_at), 'field-created'),
            field('Last active', when(s.last_active), 'field-last-active'),
            field('Expires', when(s.expires_at), 'field-expires')))));

    /* the user's name makes a better breadcrumb than the id */
    if (uid) {
      api(`app/users/${enc(uid)}`).then((u) => {
        const a = crumbBar.querySelector(`li:nth-child(2) a`);

        if (a && ctx.alive()) {
          a.textContent = displayName(u);
        }
      }, () => {});
    }
  }

  /* risk signals (a session's "risk": [{signal, detail, from?, to?}]) */

  const SIGNALS = {
    new_country: 'New country',
    new_device: 'New device',
    impossible_travel: 'Impossible travel',
    concurrent_sessions: 'Concurrent sessions',
  };

  function riskList(risk) {
    return Array.isArray(risk)
      ? risk.filter((r) => r && typeof r === 'object' && text(r.signal))
      : [];
  }

  function riskBadge(r) {
    const sig = text(r.signal);

    return h('span', {
      class: `risk risk-${SIGNALS[sig] ? sig.replace(/_/g, '-') : 'other'}`,
      title: text(r.detail) || null, 'data-testid': 'risk-badge',
      'data-signal': sig,
    }, SIGNALS[sig] || sig);
  }

  function riskBadges(risk, orDash) {
    const list = riskList(risk);

    if (list.length === 0) {
      return orDash ? dash() : null;
    }

    return h('span', { class: 'risks' }, list.map(riskBadge));
  }

  function place(p) {
    const lat = Number(p.latitude);
    const lon = Number(p.longitude);
    const ok = Number.isFinite(lat) && Number.isFinite(lon)
               && p.latitude !== null && p.longitude !== null
               && Math.abs(lat) <= 90 && Math.abs(lon) <= 180;

    return {
      cc: text(p.country_code).toUpperCase(),
      lat: ok ? lat : null,
      lon: ok ? lon : null,
      at: text(p.at),
    };
  }

  function placeText(p) {
    return join(', ', country(p.cc) || 'Unknown country',
                p.lat === null ? ''
                  : `${+p.lat.toFixed(4)}, ${+p.lon.toFixed(4)}`);
  }

  function riskCard(risk) {
    const list = riskList(risk);

    if (list.length === 0) {
      return card('Risk', h('p', { class: 'card-pad muted',
                                   'data-testid': 'risk-none' },
        'No risk signal for this session.'));
    }

    return card('Risk', h('ul', { class: 'risk-list', 'data-testid': 'risk' },
      list.map((r) => {
        const li = h('li', { 'data-testid': 'risk-item',
                             'data-signal': text(r.signal) },
          riskBadge(r),
          text(r.detail) ? h('span', { class: 'risk-detail' }, text(r.detail))
                         : null);

        if (r.signal === 'impossible_travel' && r.from && r.to) {
          li.append(travel(place(r.from), place(r.to)));
        }

        return li;
      })));
  }

  /* impossible travel: the two places, and a small map with the two joined */

  function travel(from, to) {
    const stop = (label, p, testid) => h('div', { class: 'travel-stop',
                                                  'data-testid': testid },
      h('span', { class: `travel-dot travel-dot-${testid}`,
                  'aria-hidden': 'true' }),
      h('div', null,
        h('strong', null, label),
        h('div', null, placeText(p)),
        p.at ? h('div', { class: 'muted' }, when(p.at)) : null));

    const box = h('div', { class: 'travel' },
      h('div', { class: 'travel-stops' },
        stop('From', from, 'travel-from'), stop('To', to, 'travel-to')));

    if (from.lat !== null && to.lat !== null) {
      box.append(travelMap(from, to));
    }

    return box;
  }

  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);

    for (const [k, v] of Object.entries(attrs || {})) {
      if (v != null && v !== false) {
        el.setAttribute(k, String(v));
      }
    }

    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) {
        el.append(kid instanceof Node ? kid : String(kid));
      }
    }

    return el;
  }

  const world = () => window.identityWorld || null;
  const px = (lon) => (lon + 180) * (world() ? world().k : 4);
  const py = (lat) => (90 - lat) * (world() ? world().k : 4);
  const r1 = (v) => Math.round(v * 10) / 10;

  /* the countries as paths; "shade" gives a class and a title per code */

  function countries(shade) {
    const w = world();
    const g = svg('g', { class: 'countries' });

    if (!w) {
      return g;
    }

    for (const [cc, d] of Object.entries(w.shapes)) {
      const s = shade ? shade(cc) : null;
      const path = svg('path', {
        d, class: s ? `country ${s.cls}` : 'country', 'data-cc': cc,
        'data-count': s ? s.count : null,
        'data-testid': s ? 'map-country' : null,
      });

      if (s) {
        path.append(svg('title', null, s.title));
      }

      g.append(path);
    }

    return g;
  }

  function travelMap(from, to) {
    const [x1, y1, x2, y2] = [px(from.lon), py(from.lat),
                              px(to.lon), py(to.lat)];
    const pad = 60;
    let x = Math.min(x1, x2) - pad;
    let y = Math.min(y1, y2) - pad;
    let w = Math.abs(x2 - x1) + 2 * pad;
    let hh = Math.abs(y2 - y1) + 2 * pad;

    /* at least 2:1, centred */
    if (w < 2 * hh) {
      x -= (2 * hh - w) / 2;
      w = 2 * hh;
    } else {
      y -= (w / 2 - hh) / 2;
      hh = w / 2;
    }

    const unit = w / 400;

    return svg('svg', {
      class: 'travel-map', viewBox: `${r1(x)} ${r1(y)} ${r1(w)} ${r1(hh)}`,
      role: 'img', 'data-testid': 'travel-map',
      'aria-label': `From ${placeText(from)} to ${placeText(to)}`,
    },
    svg('rect', { class: 'sea', x: r1(x), y: r1(y), width: r1(w),
                  height: r1(hh) }),
    countries((cc) => (cc === from.cc || cc === to.cc
      ? { cls: 'shade-travel', title: country(cc) } : null)),
    svg('line', { class: 'travel-line', x1: r1(x1), y1: r1(y1), x2: r1(x2),
                  y2: r1(y2), 'stroke-width': r1(2 * unit) }),
    svg('circle', { class: 'travel-from', cx: r1(x1), cy: r1(y1),
                    r: r1(6 * unit), 'stroke-width': r1(2 * unit) },
      svg('title', null, `From ${placeText(from)}`)),
    svg('circle', { class: 'travel-to', cx: r1(x2), cy: r1(y2),
                    r: r1(6 * unit), 'stroke-width': r1(2 * unit) },
      svg('title', null, `To ${placeText(to)}`)));
  }

  /* #/overview : logins over time, and where the sessions are */

  const RANGES = { '24h': 'last 24 hours', '7d': 'last 7 days' };
  const num = new Intl.NumberFormat('en');
  const hourFmt = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit',
  });
  const dayFmt = new Intl.DateTimeFormat(undefined, {
    weekday: 'short', day: 'numeric',
  });

  function niceMax(n) {
    if (n <= 4) {
      return 4;
    }

    const p = 10 ** Math.floor(Math.log10(n));

    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * p >= n) {
        return m * p;
      }
    }

    return 10 * p;
  }

  function count0(v) {
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
  }

  /* drawn at the width it has, so that its text is of the page's size */

  function chart(data, width) {
    const W = Math.max(300, Math.round(width) || 720);
    const H = W < 500 ? 180 : 240;
    const L = 40;
    const R = 8;
    const T = 12;
    const B = 28;
    const buckets = (Array.isArray(data.buckets) ? data.buckets : [])
      .map((b) => ({ start: parseTime(b && b.start), raw: text(b && b.start),
                     ok: count0(b && b.success), ko: count0(b && b.failure) }))
      .filter((b) => b.start !== null);
    const step = Number(data.bucket_seconds) > 0
      ? Number(data.bucket_seconds) * 1000 : 3600000;
    const max = niceMax(Math.max(0, ...buckets.map((b) => b.ok + b.ko)));
    const bw = buckets.length ? (W - L - R) / buckets.length : 0;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg('svg', {
      class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
      'data-testid': 'logins-chart', 'aria-labelledby': 'chart-summary',
    });

    for (const v of [0, max / 2, max]) {
      g.append(svg('line', { class: v ? 'grid' : 'axis', x1: L, x2: W - R,
                             y1: r1(y(v)), y2: r1(y(v)) }),
               svg('text', { class: 'tick', x: L - 6, y: r1(y(v) + 4),
                             'text-anchor': 'end' }, num.format(v)));
    }

    const long = step > 3600000;

    buckets.forEach((b, i) => {
      const x = L + i * bw;
      const end = new Date(b.start + step);
      const label = long
        ? `${absFmt.format(b.start)} \u2013 ${absFmt.format(end)}`
        : `${absFmt.format(b.start)} \u2013 ${hourFmt.format(end)}`;
      const bar = svg('g', { class: 'bar', 'data-testid': 'chart-bar',
                             'data-start': b.raw, 'data-success': b.ok,
                             'data-failure': b.ko },
        svg('title', null, `${label}: ${b.ok} succeeded, ${b.ko} failed`),
        svg('rect', { class: 'bar-hit', x: r1(x), y: T, width: r1(bw),
                      height: H - T - B }));

      if (b.ok) {
        bar.append(svg('rect', { class: 'bar-success', x: r1(x + bw * 0.15),
                                 y: r1(y(b.ok)), width: r1(bw * 0.7),
                                 height: r1(y(0) - y(b.ok)) }));
      }

      if (b.ko) {
        bar.append(svg('rect', { class: 'bar-failure', x: r1(x + bw * 0.15),
                                 y: r1(y(b.ok + b.ko)), width: r1(bw * 0.7),
                                 height: r1(y(b.ok) - y(b.ok + b.ko)) }));
      }

      g.append(bar);

      const d = new Date(b.start);
      const tick = long ? d.getHours() < step / 3600000
                        : i % 6 === 0;

      if (tick) {
        g.append(svg('text', { class: 'tick', x: r1(x + bw / 2),
                               y: H - 8, 'text-anchor': 'middle' },
          long ? dayFmt.format(d) : hourFmt.format(d)));
      }
    });

    return { el: g, buckets };
  }

  function loginsCard(range) {
    const body = h('div', { class: 'chart-body' });
    const summary = h('p', { class: 'chart-summary', id: 'chart-summary',
                             'data-testid': 'chart-summary' });
    const toggle = h('div', { class: 'toggle', role: 'group',
                              'aria-label': 'Time range' },
      Object.keys(RANGES).map((r) => h('a', {
        href: `#/overview?range=${r}`, class: 'toggle-item',
        'aria-current': r === range ? 'true' : null,
        'data-testid': `range-${r}`,
      }, r === '24h' ? '24 hours' : '7 days')));

    const box = h('section', { class: 'card', 'data-testid': 'logins' },
      h('div', { class: 'card-head' },
        h('h2', { class: 'card-title' }, 'Logins'), toggle),
      summary, body,
      h('p', { class: 'legend muted' },
        h('span', { class: 'legend-item' },
          h('span', { class: 'key key-success', 'aria-hidden': 'true' }),
          'Succeeded'),
        h('span', { class: 'legend-item' },
          h('span', { class: 'key key-failure', 'aria-hidden': 'true' }),
          'Failed: refused by the provider or a risk rule, or did not '
          + 'validate')));

    async function load() {
      let data;

      body.replaceChildren(loading('Loading logins\u2026'));

      try {
        data = await api(query('app/stats/logins', { range }));
      } catch (err) {
        body.replaceChildren(err.status === 404
          ? empty('No login statistics on this server.',
                  'This version of the module does not count logins.')
          : failure(err, load));
        return;
      }

      const c = chart(data, body.clientWidth - 32);
      const ok = c.buckets.reduce((a, b) => a + b.ok, 0);
      const ko = c.buckets.reduce((a, b) => a + b.ko, 0);

      summary.textContent = `${num.format(ok + ko)} login`
        + `${ok + ko === 1 ? '' : 's'} in the ${RANGES[range]}: `
        + `${num.format(ok)} succeeded, ${num.format(ko)} failed.`;

      /* the same numbers as a table, for screen readers */
      const t = table('Logins by time', 'chart-table',
                      ['From', 'Succeeded', 'Failed']);

      t.body.append(...c.buckets.map((b) => h('tr', null,
        h('td', null, absFmt.format(b.start)), h('td', null, String(b.ok)),
        h('td', null, String(b.ko)))));
      body.replaceChildren(c.el, h('div', { class: 'sr-only' }, t.el));
    }

    load();

    return box;
  }

  /* the active sessions, at most MAP_PAGES pages of 100 */

  const MAP_PAGES = 10;

  async function allSessions(alive) {
    const list = [];
    let path = query('app/sessions', { limit: 100 });
    let pages = 0;

    while (path && pages < MAP_PAGES && alive()) {
      const data = await api(path);

      pages++;
      list.push(...(Array.isArray(data.application_sessions)
        ? data.application_sessions : []));
      path = nextPage('app/sessions', data.next_page_uri);
    }

    return { list, capped: Boolean(path) };
  }

  function mapCard(alive) {
    const body = h('div', { class: 'map-body' });
    const note = h('p', { class: 'card-sub muted', 'data-testid': 'map-note' });

    async function load() {
      let got;

      body.replaceChildren(loading('Loading sessions\u2026'));

      try {
        got = await allSessions(alive);
      } catch (err) {
        body.replaceChildren(failure(err, load));
        return;
      }

      const byCountry = new Map();
      const points = new Map();
      let located = 0;

      for (const s of got.list) {
        const loc = (s && s.browser_session && s.browser_session.location)
                    || {};
        const p = place(loc);

        if (/^[A-Z]{2}$/.test(p.cc)) {
          byCountry.set(p.cc, (byCountry.get(p.cc) || 0) + 1);
        }

        if (p.lat !== null) {
          const key = `${p.lat.toFixed(2)},${p.lon.toFixed(2)}`;
          const pt = points.get(key) || { lat: p.lat, lon: p.lon, cc: p.cc,
                                          n: 0 };

          pt.n++;
          points.set(key, pt);
          located++;
        }
      }

      const n = got.list.length;

      note.textContent = `${num.format(n)} active session${n === 1 ? '' : 's'}`
        + `${got.capped ? ' counted (the first '
                          + `${num.format(MAP_PAGES * 100)}; there are more)`
                        : ''}, `
        + `${num.format(byCountry.size)} countr${byCountry.size === 1 ? 'y'
                                                                     : 'ies'}`
        + `, ${num.format(located)} with coordinates.`;

      if (got.capped) {
        note.dataset.capped = 'true';
      }

      if (!world()) {
        body.replaceChildren(empty('The map did not load.'));
        return;
      }

      const top = Math.max(1, ...byCountry.values());
      const level = (c) => Math.min(5, 1 + Math.floor(4 * Math.log(c)
                                              / Math.log(Math.max(2, top))));
      const k = world().k;
      const m = svg('svg', {
        class: 'world', viewBox: `0 ${24} ${360 * k} ${140 * k}`,
        role: 'img', 'data-testid': 'world-map',
        'aria-label': `Map of active sessions: ${[...byCountry]
          .map(([cc, c]) => `${country(cc)}: ${c}`).join('; ') || 'none'}`,
      },
      countries((cc) => {
        const c = byCountry.get(cc);

        return c ? { cls: `shade shade-${level(c)}`, count: c,
                     title: `${country(cc)}: ${c} session${c === 1 ? '' : 's'}`}
                 : null;
      }));

      for (const pt of [...points.values()].sort((a, b) => b.n - a.n)) {
        m.append(svg('circle', {
          class: 'point', cx: r1(px(pt.lon)), cy: r1(py(pt.lat)),
          r: r1(8 + 4 * Math.sqrt(pt.n)), 'data-testid': 'map-point',
          'data-r': 3 + 2 * Math.sqrt(pt.n),
          'data-count': pt.n, 'data-cc': pt.cc || null,
          'data-lat': pt.lat, 'data-lon': pt.lon,
        }, svg('title', null, `${+pt.lat.toFixed(2)}, ${+pt.lon.toFixed(2)}`
                              + `${pt.cc ? ` (${pt.cc})` : ''}: ${pt.n} `
                              + `session${pt.n === 1 ? '' : 's'}`)));
      }

      /* the counts as a list: links to the sessions of each country */
      const list = h('ol', { class: 'country-list',
                             'data-testid': 'country-list' },
        [...byCountry].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
          .map(([cc, c]) => h('li', { 'data-cc': cc },
            h('a', { href: `#/sessions?country=${enc(cc)}` },
              h('span', { class: `swatch shade-${level(c)}`,
                          'aria-hidden': 'true' }),
              h('span', { class: 'country-name' }, country(cc))),
            h('span', { class: 'country-count' }, num.format(c)))));

      pointSizes(m);
      body.replaceChildren(h('div', { class: 'map-wrap' }, m),
        byCountry.size ? list
                       : empty('No session has a country.',
                               'Countries come from identity_geoip_database.'));
    }

    load();

    return h('section', { class: 'card', 'data-testid': 'sessions-map' },
      h('h2', { class: 'card-title' }, 'Active sessions by country'),
      note, body);
  }

  /* points keep their size in pixels (data-r) whatever the map's width */

  function pointSizes(m) {
    const fit = () => {
      const w = m.getBoundingClientRect().width;

      if (w > 0) {
        const unit = m.viewBox.baseVal.width / w;

        for (const c of m.querySelectorAll('circle[data-r]')) {
          c.setAttribute('r', r1(Number(c.dataset.r) * unit));
        }
      }
    };

    if (window.ResizeObserver) {
      new ResizeObserver(fit).observe(m);
    }
  }

  function viewOverview(view, route, ctx) {
    const r = route.params.get('range');
    const range = RANGES[r] ? r : '24h';

    document.title = 'Overview \u00b7 Identities';
    view.append(
      heading('Overview', 'Logins over time, and where the active sessions '
                          + 'are.'),
      loginsCard(range), mapCard(ctx.alive));
  }

  /* #/sessions : every session, with filters */

  const DEVICES = ['Desktop', 'Mobile', 'Tablet', 'Bot', 'Other'];

  function filterSelect(name, label, value, options) {
    const id = `filter-${name}`;
    const sel = h('select', { name, id, 'data-testid': id },
      options.map(([v, l]) => h('option', { value: v }, l)));

    if (value && !options.some(([v]) => v === value)) {
      sel.append(h('option', { value }, value));
    }

    sel.value = value;

    return { sel, el: h('div', { class: 'filter' },
      h('label', { for: id }, label), sel) };
  }

  function viewSessions(view, route) {
    const p = route.params;
    const f = {
      provider: p.get('provider') || '',
      country: (p.get('country') || '').toUpperCase(),
      device: p.get('device') || '',
      risk: p.get('risk') || '',
    };
    const params = { limit: PAGE };
    const count = h('p', { class: 'count muted', 'aria-live': 'polite',
                           'data-testid': 'sessions-count' });

    for (const [k, v] of Object.entries(f)) {
      if (v) {
        params[k] = v;
      }
    }

    document.title = 'Sessions \u00b7 Identities';

    const provider = filterSelect('provider', 'Provider', f.provider,
                                  [['', 'All']]);
    const cc = h('input', {
      type: 'text', name: 'country', id: 'filter-country', value: f.country,
      maxlength: '2', size: '4', placeholder: 'FR', autocomplete: 'off',
      spellcheck: 'false', pattern: '[A-Za-z]{2}',
      title: 'Two letters: an ISO 3166 country code',
      'data-testid': 'filter-country',
    });
    const device = filterSelect('device', 'Device', f.device,
      [['', 'All'], ...DEVICES.map((d) => [d, d])]);
    const risk = filterSelect('risk', 'Risk', f.risk,
      [['', 'All'], ['any', 'Any signal'],
       ...Object.entries(SIGNALS)]);
    const filtered = Object.values(f).some(Boolean);

    const form = h('form', { class: 'search filters', role: 'search',
                             'aria-label': 'Filter sessions',
                             'data-testid': 'session-filters' },
      provider.el,
      h('div', { class: 'filter' },
        h('label', { for: 'filter-country' }, 'Country'), cc),
      device.el, risk.el,
      h('button', { type: 'submit', class: 'btn btn-primary',
                    'data-testid': 'filter-submit' }, 'Filter'),
      filtered ? h('a', { href: '#/sessions', class: 'btn btn-quiet',
                          'data-testid': 'filter-clear' }, 'Clear') : null);

    function fillProviders() {
      const cur = provider.sel.value || f.provider;

      provider.sel.replaceChildren(h('option', { value: '' }, 'All'),
        ...[...state.providers].sort()
          .map((n) => h('option', { value: n }, n)));
      provider.sel.value = cur;
    }

    form.addEventListener('submit', (e) => {
      const q = new URLSearchParams();

      e.preventDefault();

      for (const [k, el] of [['provider', provider.sel], ['country', cc],
                             ['device', device.sel], ['risk', risk.sel]]) {
        const v = el.value.trim();

        if (v) {
          q.set(k, k === 'country' ? v.toUpperCase() : v);
        }
      }

      const hash = q.toString() ? `#/sessions?${q}` : '#/sessions';

      if (location.hash === hash) {
        render();
      } else {
        location.hash = hash;
      }
    });

    for (const s of [provider.sel, device.sel, risk.sel]) {
      s.addEventListener('change', () => form.requestSubmit());
    }

    if (f.provider) {
      state.providers.add(f.provider);
    }

    fillProviders();

    /* the providers' and the identities' names come from app/users */
    api(query('app/users', { limit: 100 })).then((d) => {
      learnNames(Array.isArray(d.application_users)
        ? d.application_users : []);

      if (form.isConnected) {
        fillProviders();
      }
    }, () => {});

    const results = h('div', { class: 'results' });

    view.append(
      heading('Sessions', 'Every active session, most recently made first.'),
      h('div', { class: 'card card-table' },
        h('div', { class: 'toolbar' }, form, count), results));

    sessionList(results, 'app/sessions', params, false, null, {
      withUser: true,
      counted: (n, more) => {
        count.textContent = n
          ? `${n}${more ? '+' : ''} session${n === 1 && !more ? '' : 's'}`
          : '';
      },
      empty: () => (filtered
        ? empty('No sessions match these filters.')
        : empty('No sessions.', 'Sessions appear here when users sign in.')),
    });
  }

  /* events: #/activity, and a user's recent activity */

  const ACTIONS = {
    login: 'Login',
    logout: 'Logout',
    session_revoked: 'Session revoked',
    session_expired: 'Session expired',
    user_deleted: 'Identity deleted',
    risk_flagged: 'Risk flagged',
  };

  /* event.reason in words; the code itself as the tooltip */

  const REASONS = {
    state: 'No valid login state (forged, replayed or expired)',
    link: 'A malformed callback',
    cancelled: 'Cancelled at the provider',
    refused: 'Refused by the provider or the claims',
    unavailable: 'The session store was unavailable',
    provider: 'The provider failed',
    internal: 'An internal error',
    'rule:email': 'Refused by an e-mail rule',
    'rule:group': 'Refused by a group rule',
    'rule:claim': 'Refused by a claim rule',
    api: 'By an administrator',
    backchannel: 'Back-channel logout from the provider',
    logout: 'The user logged out',
    refresh: 'The provider or the rules no longer admit the user',
    risk: 'A risk rule',
    max_duration: 'Past its maximum duration',
  };

  function reason(v) {
    const r = text(v);
    const sig = r.startsWith('risk:') ? r.slice(5) : '';
    const words = REASONS[r]
      || (sig ? `Denied: ${(SIGNALS[sig] || sig).toLowerCase()}` : '');

    return h('span', { class: 'reason', title: words ? r : null,
                       'data-testid': 'event-reason', 'data-reason': r },
      words || r);
  }

  function obj(v) {
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  }

  function actionBadge(ev) {
    const e = obj(ev.event);
    const a = text(e.action);
    const outcome = text(e.outcome);
    const cls = outcome === 'failure' || a === 'risk_flagged'
      ? 'act-bad' : (a === 'login' ? 'act-good' : 'act-neutral');

    return h('span', { class: `badge act ${cls}`, 'data-testid': 'event-action',
                       'data-action': a, 'data-outcome': outcome || null },
      (ACTIONS[a] || a || '?')
      + (a === 'login' && outcome ? ` ${outcome === 'failure' ? 'failed'
                                                              : 'succeeded'}`
                                  : ''));
  }

  function who(u) {
    const o = obj(u);
    const id = text(o.id);
    const name = text(o.email) || text(o.name) || text(o.username) || id;

    if (!name) {
      return null;
    }

    return id && /^au_/.test(id)
      ? h('a', { href: userHref(id) }, name) : h('span', null, name);
  }

  function eventRow(ev, withUser) {
    const e = obj(ev.event);
    const user = obj(ev.user);
    const target = obj(user.target);
    const src = obj(ev.source);
    const geo = obj(src.geo);
    const sid = text(obj(ev.session).id);
    const provider = text(obj(ev.identity).provider);
    const actor = who(user);
    const details = [];

    if (text(e.reason)) {
      details.push(reason(e.reason));
    }

    if (Object.keys(target).length) {
      details.push(h('span', null, 'of ', who(target) || dash()));
    }

    if (riskList(ev.risk).length) {
      details.push(riskBadges(ev.risk));
    }

    if (sid) {
      details.push(h('a', { href: sessionHref(sid) },
        h('code', { class: 'id' }, sid)));
    }

    return h('tr', { 'data-testid': 'event-row', 'data-event-id': text(ev.id),
                     'data-action': text(e.action) },
      h('td', { class: 'cell-primary', 'data-label': 'Event' },
        actionBadge(ev)),
      td('When', ago(text(ev['@timestamp']))),
      withUser
        ? td('User', actor
                     ? h('span', null, actor,
                         provider ? h('span', { class: 'muted' },
                                      ` \u00b7 ${provider}`) : null)
                     : dash())
        : null,
      td('Source', text(src.ip) || text(geo.country_iso_code)
        ? join(' \u00b7 ', src.ip, geo.country_iso_code) : dash()),
      td('Details', details.length
        ? h('span', { class: 'details' }, details) : dash()));
  }

  function eventList(container, params, withUser, counted) {
    const columns = ['Event', 'When', 'User', 'Source', 'Details'];

    if (!withUser) {
      columns.splice(2, 1);
    }

    pager(container, query('app/events', params),
          (ev) => eventRow(ev, withUser), {
      key: 'events', path: 'app/events', testid: 'events-table',
      caption: 'Events', columns, counted,
      failed: (err) => (err.status === 404
        ? empty('No activity on this server.',
                'This version of the module does not record events.')
        : null),
      loading: 'Loading activity\u2026',
      empty: () => empty('No events.', params.action || params.user
        ? 'Nothing recorded matches.'
        : 'Logins, logouts and revocations appear here.'),
    });
  }

  function viewActivity(view, route) {
    const action = route.params.get('action') || '';
    const params = { limit: PAGE };
    const count = h('p', { class: 'count muted', 'aria-live': 'polite' });
    const sel = filterSelect('action', 'Action', action,
      [['', 'All'], ...Object.entries(ACTIONS)]);
    const form = h('form', { class: 'search filters', role: 'search',
                             'aria-label': 'Filter activity' },
      sel.el,
      action ? h('a', { href: '#/activity', class: 'btn btn-quiet',
                        'data-testid': 'filter-clear' }, 'Clear') : null);

    if (action) {
      params.action = action;
    }

    sel.sel.addEventListener('change', () => {
      location.hash = sel.sel.value
        ? `#/activity?action=${enc(sel.sel.value)}` : '#/activity';
    });
    form.addEventListener('submit', (e) => e.preventDefault());

    document.title = 'Activity \u00b7 Identities';

    const results = h('div', { class: 'results' });

    view.append(
      heading('Activity', 'Logins, logouts, revocations and other events, '
                          + 'newest first.'),
      h('div', { class: 'card card-table' },
        h('div', { class: 'toolbar' }, form, count), results));

    eventList(results, params, true, (n, more) => {
      count.textContent = n
        ? `${n}${more ? '+' : ''} event${n === 1 && !more ? '' : 's'}` : '';
    });
  }

  function viewNotFound(view) {
    document.title = 'Not found \u00b7 Identities';
    view.append(heading('Not found'),
      h('div', { class: 'state state-error', 'data-testid': 'error' },
        h('p', null, 'There is no such page. ',
          h('a', { href: '#/' }, 'Back to identities'))));
  }

  /* the confirmation dialog */

  function confirmDelete(o) {
    const dialog = document.getElementById('confirm');
    const ok = document.getElementById('confirm-ok');
    const cancel = document.getElementById('confirm-cancel');
    const label = ok.querySelector('span');
    let busy = false;

    document.getElementById('confirm-title').textContent = o.title;
    document.getElementById('confirm-text').textContent = o.body;
    ok.disabled = false;
    cancel.disabled = false;
    label.textContent = 'Delete';

    async function onOk() {
      busy = true;
      ok.disabled = true;
      cancel.disabled = true;
      label.textContent = 'Deleting\u2026';

      try {
        await api(o.path, 'DELETE');
      } catch (err) {
        if (err.status !== 404) {
          busy = false;
          dialog.close('error');
          state.flash = { error: err };
          showFlash();
          return;
        }
      }

      busy = false;
      dialog.close('deleted');
      o.done();
    }

    function onCancel(e) {
      if (busy) {
        e.preventDefault();
      }
    }

    /* Tab cycles between the two buttons, not out to the browser */
    function onKey(e) {
      if (e.key !== 'Tab') {
        return;
      }

      const first = cancel;
      const last = ok;

      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }

    function onClose() {
      ok.removeEventListener('click', onOk);
      dialog.removeEventListener('cancel', onCancel);
      dialog.removeEventListener('keydown', onKey);

      if (dialog.returnValue !== 'deleted' && o.opener.isConnected) {
        o.opener.focus();
      }
    }

    ok.addEventListener('click', onOk);
    dialog.addEventListener('cancel', onCancel);
    dialog.addEventListener('keydown', onKey);
    dialog.addEventListener('close', onClose, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    cancel.focus();
  }

  /* the router */

  function parseRoute() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    let parts;

    try {
      parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      return { view: viewNotFound };
    }

    if (parts.length === 0) {
      return { view: viewUsers, params, section: 'users' };
    }

    if (parts.length === 1 && parts[0] === 'overview') {
      return { view: viewOverview, params, section: 'overview' };
    }

    if (parts.length === 1 && parts[0] === 'sessions') {
      return { view: viewSessions, params, section: 'sessions' };
    }

    if (parts.length === 1 && parts[0] === 'activity') {
      return { view: viewActivity, params, section: 'activity' };
    }

    if (parts[0] === 'users' && parts.length === 2) {
      return { view: viewUser, id: parts[1], section: 'users' };
    }

    if (parts[0] === 'users' && parts.length === 4
        && parts[2] === 'endpoints')
    {
      return { view: viewEndpoint, id: parts[1], ep: parts[3],
               section: 'users' };
    }

    if (parts[0] === 'sessions' && parts.length === 2) {
      return { view: viewSession, id: parts[1], section: 'sessions' };
    }

    return { view: viewNotFound };
  }

  async function render() {
    const id = ++state.renderId;
    const view = document.getElementById('view');
    const route = parseRoute();
    const ctx = { alive: () => id === state.renderId };
    const dialog = document.getElementById('confirm');

    if (dialog.open) {
      dialog.close();
    }

    showFlash();
    view.replaceChildren();
    view.dataset.route = location.hash;

    for (const a of document.querySelectorAll('[data-section]')) {
      if (a.dataset.section === route.section) {
        a.setAttribute('aria-current', 'page');
      } else {
        a.removeAttribute('aria-current');
      }
    }

    if (!state.first) {
      window.scrollTo(0, 0);
    }

    const first = state.first;
    const main = document.getElementById('main');
    const done = route.view(view, route, ctx);

    state.first = false;

    /* after a navigation, focus goes to the new page's title */
    if (first) {
      return;
    }

    const h1 = view.querySelector('h1');
    (h1 || main).focus({ preventScroll: true });

    await done;

    const later = view.querySelector('h1');

    if (ctx.alive() && later && document.activeElement === main) {
      later.focus({ preventScroll: true });
    }
  }

  async function loadMe() {
    try {
      state.me = await api('app/me');
    } catch (e) {
      state.me = null;
      return;
    }

    const me = state.me;
    const who = text(me.email) || text(me.name) || '';
    const logout = text(me.logout_url) ? safeUrl(me.logout_url) : null;

    document.getElementById('account-email').textContent = who;
    document.querySelector('.account-who').hidden = !who;
    document.getElementById('logout').setAttribute('href', logout || LOGOUT);
    document.getElementById('account').hidden = false;
  }

  function start() {
    document.getElementById('skip').addEventListener('click', (e) => {
      e.preventDefault();
      document.getElementById('main').focus();
    });

    state.meReady = loadMe();
    window.addEventListener('hashchange', render);
    render();
  }

  start();
})();
